"""Fast lane latency and throughput: the real webhook over HTTP, many students.

Starts the SwiftChat imitation and `tutorlane serve --workers N` against a real Redis
(database 8, flushed), then plays students through the shipped course: each student
greets and answers, one message at a time, many students at once. Prints one JSON
line per figure: messages per second and latency percentiles of the webhook.

    python -m tutorlane.bench.fast_lane --students 5000 --concurrency 64

TODO: the load generator is Python (httpx) on the same 2 cores, so the figure is a
floor for the service; issue 7 asks for a wrk-driven run and a minimal Falcon + Redis
app in the same run for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8")
SECRET = "bench-secret-0123456789"
SCRIPT = ["hi", "500", "7", "hint", "0", "skip", "6,509", "12"]


def free_port() -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def report(figure: str, value: float, unit: str, **context: object) -> None:
    """Print one figure as a JSON line."""
    line = {"figure": figure, "value": round(value, 2), "unit": unit, **context}
    print(json.dumps(line), flush=True)


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start one tutorlane process."""
    return subprocess.Popen(
        [sys.executable, "-m", "tutorlane", *args],
        env={**os.environ, **env},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def wait_up(url: str) -> None:
    """Wait until `url` answers."""
    for _ in range(200):
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


async def drive(url: str, students: int, concurrency: int) -> tuple[list[float], float]:
    """Play SCRIPT for every student, `concurrency` students at a time."""
    latencies: list[float] = []
    retried: list[int] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for number in range(students):
        queue.put_nowait(number)
    limits = httpx.Limits(max_connections=concurrency)

    async with httpx.AsyncClient(timeout=30, limits=limits) as http:

        async def student_loop() -> None:
            while not queue.empty():
                number = queue.get_nowait()
                phone = f"+9170{number:08d}"
                for step, text in enumerate(SCRIPT):
                    body = {
                        "from": phone,
                        "type": "text",
                        "timestamp": str(int(time.time())),
                        "message_id": f"{phone}-{step}",
                        "text": {"body": text},
                    }
                    began = time.perf_counter()
                    try:
                        response = await http.post(url, json=body)
                    except (httpx.ReadError, httpx.RemoteProtocolError):
                        # A keep-alive connection closed under us: retry, as
                        # SwiftChat would; the message id makes it safe.
                        retried.append(1)
                        response = await http.post(url, json=body)
                    latencies.append(time.perf_counter() - began)
                    if response.status_code != 200:
                        raise SystemExit(f"{response.status_code}: {response.text}")

        began = time.perf_counter()
        await asyncio.gather(*(student_loop() for _ in range(concurrency)))
        if retried:
            print(f"retried {len(retried)} requests on closed connections")
        return latencies, time.perf_counter() - began


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    redis.Redis.from_url(REDIS_URL).flushdb()
    logs = Path(tempfile.mkdtemp(prefix="bench-fast-lane-"))
    imitation_port, serve_port = free_port(), free_port()
    imitation = start(
        ["dev", "swiftchat-imitation", "--port", str(imitation_port)],
        {},
        logs / "imitation.log",
    )
    env = {
        "TUTORLANE_REDIS_URL": REDIS_URL,
        "TUTORLANE_WEBHOOK_SECRET": SECRET,
        "TUTORLANE_SWIFTCHAT_BASE_URL": f"http://127.0.0.1:{imitation_port}",
        "TUTORLANE_SWIFTCHAT_BOT_ID": "bench",
        "TUTORLANE_SWIFTCHAT_API_KEY": "bench",
        "TUTORLANE_AMQP_URL": "amqp://unused/",  # the slow lane is not measured here
        "TUTORLANE_VAR": str(logs / "var"),
    }
    serve = start(
        ["serve", "--port", str(serve_port), "--workers", str(args.workers)],
        env,
        logs / "serve.log",
    )
    try:
        wait_up(f"http://127.0.0.1:{imitation_port}/_sent")
        wait_up(f"http://127.0.0.1:{serve_port}/healthz")
        url = f"http://127.0.0.1:{serve_port}/webhooks/swiftchat/{SECRET}"
        latencies, elapsed = asyncio.run(drive(url, args.students, args.concurrency))
    finally:
        for process in (serve, imitation):
            process.terminate()
            process.wait()

    cuts = statistics.quantiles(latencies, n=100)
    context = {
        "messages": len(latencies),
        "students": args.students,
        "concurrency": args.concurrency,
        "server": f"serve --workers {args.workers}, real Redis, replies to imitation",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_generator": "httpx on the same machine",
    }
    report(
        "fast_lane_messages_per_second", len(latencies) / elapsed, "msg/s", **context
    )
    report("fast_lane_latency_p50", cuts[49] * 1000, "ms", **context)
    report("fast_lane_latency_p99", cuts[98] * 1000, "ms", **context)


if __name__ == "__main__":
    main()
