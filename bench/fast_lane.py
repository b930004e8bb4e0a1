"""Fast lane against its floor: the real webhook over HTTP, 100,000 distinct students.

One run starts, on this machine:

- the SwiftChat imitation (`tutorlane dev swiftchat-imitation`), so that every reply
  really goes out over HTTP and is confirmed in the outbox, as in production;
- `tutorlane serve --workers 2` (gunicorn + uvicorn workers) on a real Redis;
- the floor, `bench/floor_app.py`: a minimal Falcon ASGI app doing one Redis GET and
  one SET per message, under the same gunicorn + uvicorn configuration;
- the floor with reply: the same app also POSTing a fixed reply to the imitation
  after each answer (aiohttp, in the background, as the fast lane sends), the floor
  of any design that must send each reply to the SwiftChat API.

It then measures, each in turn:

1. each floor's maximum throughput (closed loop, `--connections` keep-alive
   connections, `--floor-seconds` long), and
2. the fast lane's maximum throughput over `--students / --rounds` distinct
   students (phone numbers never reused in a run), each sending `hi` and then an
   answer; the clock stops when the last reply has been sent to the imitation and
   confirmed, so reply delivery is inside the figure;

   all in `--rounds` alternating rounds, because the machine's other load
   changes by the minute: the figures are the medians of the rounds, the ratios
   the medians of each round's ratio to its own floors; CPU time per message of
   every process (server workers, imitation, load generator) is summed over the
   rounds, a figure that other load disturbs less than throughput;
3. p50 and p99 latency of each at a constant offered load of half its own maximum
   (open loop: requests start on schedule whatever the server does, and a late one
   counts from when it was due), with new students.

It prints one JSON line per figure, with the machine's load average beside it.

    python -m tutorlane.bench.fast_lane                  # 100,000 students
    python -m tutorlane.bench.fast_lane --students 20000 # a quicker look

Why this load generator: the client shares the two cores with the servers, so every
microsecond it spends is taken from what it measures. httpx costs several hundred
microseconds of CPU per request (it capped the old version of this bench at ~130
msg/s); wrk is cheap but closed-loop only (wrk2, the constant-rate fork, is not
packaged here), is not installed on a fresh machine, and would need a Lua script to
vary the students. `bench/loadgen.py` is a raw asyncio protocol on uvloop that writes
pre-rendered requests and parses only the status line and Content-Length: a few tens
of microseconds per request, no extra dependency, and both loops (closed for the
maximum, open for latency) in one tool.

Uses Redis database 10 (`BENCH_REDIS_URL`, flushed at the start).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import redis

from tutorlane.adapters.redis_sessions import DEFAULT_SHARDS as SHARDS
from tutorlane.adapters.redis_sessions import shard_tag
from tutorlane.bench.loadgen import Outcome, Target, closed_loop, install_uvloop
from tutorlane.bench.loadgen import open_loop as run_open_loop

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
SECRET = "bench-secret-0123456789"
ANSWER = "500"
BLOCK = 2000  # students greeting before the same students answer
SERVERS = ("floor", "floor_with_reply", "fast_lane")


def free_port() -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def machine_load() -> str:
    """Return the 1, 5 and 15 minute load averages, as `uptime` shows them."""
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def report(figure: str, value: float, unit: str, **context: object) -> None:
    """Print one figure as a JSON line."""
    line = {
        "figure": figure,
        "value": round(value, 2),
        "unit": unit,
        **context,
        "load": machine_load(),
    }
    print(json.dumps(line), flush=True)


class Students:
    """Renders webhook requests of students never seen before in this run."""

    def __init__(self, port: int) -> None:
        self.head = (
            f"POST /webhooks/swiftchat/{SECRET} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        )
        self.numbers = itertools.count()
        self.used = 0
        self.timestamp = int(time.time())

    def request(self, number: int, step: int, text: str) -> bytes:
        """Return the HTTP request of one message of one student."""
        body = (
            f'{{"from":"+9170{number:08d}","type":"text",'
            f'"timestamp":"{self.timestamp}","message_id":"m-{number}-{step}",'
            f'"text":{{"body":"{text}"}}}}'
        )
        return f"{self.head}Content-Length: {len(body)}\r\n\r\n{body}".encode()

    def messages(self, students: int | None = None) -> Iterator[bytes]:
        """Yield `hi` and then an answer of each new student, a block at a time."""
        left = students if students is not None else -1
        while left != 0:
            size = BLOCK if left < 0 else min(BLOCK, left)
            block = [next(self.numbers) for _ in range(size)]
            left -= size
            for number in block:
                self.used += 1
                yield self.request(number, 0, "hi")
            yield from (self.request(number, 1, ANSWER) for number in block)


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start one process, its output to `log`."""
    return subprocess.Popen(
        [sys.executable, *args],
        env={**os.environ, **env},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def wait_up(url: str, process: subprocess.Popen[bytes]) -> None:
    """Wait until `url` answers."""
    for _ in range(300):
        if process.poll() is not None:
            raise SystemExit(f"{url}: the server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def gunicorn(app: str, port: int, workers: int) -> list[str]:
    """Return the gunicorn command `tutorlane serve --workers N` runs."""
    return [
        "-m", "gunicorn",
        "--worker-class", "uvicorn_worker.UvicornWorker",
        "--workers", str(workers),
        "--bind", f"127.0.0.1:{port}",
        "--no-control-socket",
        "--log-level", "warning",
        app,
    ]  # fmt: skip


def replies_waiting(client: redis.Redis) -> int:
    """Return how many replies the outbox still holds (sent, not yet confirmed)."""
    pipe = client.pipeline(transaction=False)
    for shard in range(SHARDS):
        pipe.xlen(f"{shard_tag(shard)}:r")
    return sum(pipe.execute())


def wait_replies_sent(client: redis.Redis, seconds: float = 120.0) -> None:
    """Wait until every committed reply has been sent and confirmed."""
    deadline = time.monotonic() + seconds
    while replies_waiting(client):
        if time.monotonic() > deadline:
            raise SystemExit("replies still waiting in the outbox after 120 s")
        time.sleep(0.05)


def children(pid: int) -> list[int]:
    """Return the ids of a process's children (gunicorn's workers)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as file:
            return [int(child) for child in file.read().split()]
    except OSError:
        return []


def cpu_seconds(pids: list[int]) -> float:
    """Return the CPU time (user + system) the processes have used, in seconds."""
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


class CpuMeter:
    """CPU time used by each group of processes over the measured stretches."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.started: dict[str, float] = {}
        self.used: dict[str, float] = dict.fromkeys([*groups, "load_generator"], 0.0)
        self.messages = 0

    def _now(self) -> dict[str, float]:
        now = {name: cpu_seconds(pids) for name, pids in self.groups.items()}
        now["load_generator"] = sum(os.times()[:2])
        return now

    def start(self) -> None:
        """Start a measured stretch."""
        self.started = self._now()

    def add(self, messages: int) -> None:
        """End a measured stretch that carried `messages`."""
        for name, seconds in self._now().items():
            self.used[name] += seconds - self.started[name]
        self.messages += messages

    def per_message(self) -> dict[str, float]:
        """Return microseconds of CPU per message of each group."""
        return {
            name: seconds / max(1, self.messages) * 1e6
            for name, seconds in self.used.items()
        }


def percentile(latencies: list[float], cut: int) -> float:
    """Return the `cut`th percentile in milliseconds."""
    return statistics.quantiles(latencies, n=100)[cut - 1] * 1000


def check(outcome: Outcome, what: str) -> None:
    """Stop if the server answered anything but 200."""
    if outcome.errors:
        raise SystemExit(f"{what}: answers other than 200: {outcome.statuses}")


def measure(
    args: argparse.Namespace,
    ports: dict[str, int],
    processes: dict[str, subprocess.Popen[bytes]],
) -> None:
    """Load the servers in turn and print the figures."""
    install_uvloop()
    client = redis.Redis.from_url(REDIS_URL)
    targets = {name: Target("127.0.0.1", port) for name, port in ports.items()}
    students = {name: Students(port) for name, port in ports.items()}
    floors = ("floor", "floor_with_reply")
    context = {
        "server": f"gunicorn + uvicorn, {args.workers} workers, real Redis",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, shared with "
        "the load generator and the imitation",
        "connections": args.connections,
    }

    # Warm them up: connections, imports, Lua script cache, JIT-less caches.
    for name in (*floors, "fast_lane"):
        asyncio.run(closed_loop(targets[name], students[name].messages(),
                                args.connections, 2.0))  # fmt: skip
    wait_replies_sent(client)

    imitation = [processes["imitation"].pid]
    meters = {
        "floor": CpuMeter({"floor_workers": children(processes["floor"].pid)}),
        "floor_with_reply": CpuMeter(
            {
                "floor_workers": children(processes["floor_with_reply"].pid),
                "imitation": imitation,
            }
        ),
        "fast_lane": CpuMeter(
            {
                "fast_lane_workers": children(processes["fast_lane"].pid),
                "imitation": imitation,
            }
        ),
    }

    # NOTE: the machine's load from other work changes by the minute, so they are
    # measured in alternating rounds and each round's ratio is to its own floors.
    rates: dict[str, list[float]] = {name: [] for name in meters}
    ratios: dict[str, list[float]] = {name: [] for name in floors}
    messages = dict.fromkeys(meters, 0)
    per_round = -(-args.students // args.rounds)
    for _ in range(args.rounds):
        for name in floors:
            # NOTE: the floor with reply sends its replies in the background; the
            # few still on their way when the loop ends (one per connection at
            # most) are left out of its time, which favours the floor.
            meters[name].start()
            floor_max = asyncio.run(
                closed_loop(targets[name], students[name].messages(),
                            args.connections, args.floor_seconds)
            )  # fmt: skip
            check(floor_max, name)
            meters[name].add(floor_max.count)
            messages[name] += floor_max.count
            rates[name].append(floor_max.count / floor_max.elapsed)

        meters["fast_lane"].start()
        began = time.perf_counter()
        fast_max = asyncio.run(
            closed_loop(targets["fast_lane"],
                        students["fast_lane"].messages(per_round), args.connections)
        )  # fmt: skip
        wait_replies_sent(client)
        elapsed = time.perf_counter() - began
        check(fast_max, "fast lane")
        meters["fast_lane"].add(fast_max.count)
        messages["fast_lane"] += fast_max.count
        rates["fast_lane"].append(fast_max.count / elapsed)
        for name in floors:
            ratios[name].append(rates["fast_lane"][-1] / rates[name][-1])
        report("round", rates["fast_lane"][-1], "msg/s",
               floor=round(rates["floor"][-1], 1),
               floor_with_reply=round(rates["floor_with_reply"][-1], 1),
               ratio=round(ratios["floor"][-1], 3),
               ratio_to_floor_with_reply=round(ratios["floor_with_reply"][-1], 3),
               **context)  # fmt: skip

    median = {name: statistics.median(rates[name]) for name in meters}
    rounds = {"rounds": args.rounds, "of": "median of the rounds"}
    report("floor_messages_per_second", median["floor"], "msg/s",
           messages=messages["floor"], **rounds, **context)  # fmt: skip
    report("floor_with_reply_messages_per_second", median["floor_with_reply"],
           "msg/s", messages=messages["floor_with_reply"],
           replies="sent to the imitation", **rounds, **context)  # fmt: skip
    report("fast_lane_messages_per_second", median["fast_lane"], "msg/s",
           messages=messages["fast_lane"], students=students["fast_lane"].used,
           replies="sent to the imitation and confirmed", **rounds,
           **context)  # fmt: skip
    report("fast_lane_to_floor_ratio", statistics.median(ratios["floor"]), "x",
           **rounds, **context)  # fmt: skip
    report("fast_lane_to_floor_with_reply_ratio",
           statistics.median(ratios["floor_with_reply"]), "x",
           **rounds, **context)  # fmt: skip
    for phase, meter in meters.items():
        for group, micros in meter.per_message().items():
            report(f"{phase}_cpu_per_message_{group}", micros, "us", phase=phase,
                   **context)  # fmt: skip

    for name, rate in median.items():
        stream = students[name].messages()
        outcome = asyncio.run(
            run_open_loop(targets[name], stream.__next__, rate / 2,
                          args.latency_seconds)
        )  # fmt: skip
        check(outcome, name)
        offered = {
            "offered": f"{rate / 2:.0f} msg/s (half the maximum), open loop",
            "messages": outcome.count,
        }
        report(
            f"{name}_latency_p50",
            percentile(outcome.latencies, 50),
            "ms",
            **offered,
            **context,
        )
        report(
            f"{name}_latency_p99",
            percentile(outcome.latencies, 99),
            "ms",
            **offered,
            **context,
        )
    wait_replies_sent(client)
    report("fast_lane_distinct_students", students["fast_lane"].used, "students",
           **context)  # fmt: skip


def main() -> None:
    """Start the servers, run the measurements, stop the servers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--students",
        type=int,
        default=100_000,
        help="distinct students over the whole run (default: %(default)s)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=64,
        help="keep-alive connections of the closed-loop rounds",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="alternating floor and fast lane rounds; medians are reported",
    )
    parser.add_argument(
        "--floor-seconds",
        type=float,
        default=8.0,
        help="length of each floor round",
    )
    parser.add_argument(
        "--latency-seconds",
        type=float,
        default=20.0,
        help="length of each constant-rate latency run",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="gunicorn workers of both servers",
    )
    args = parser.parse_args()

    redis.Redis.from_url(REDIS_URL).flushdb()
    logs = Path(tempfile.mkdtemp(prefix="bench-fast-lane-"))
    ports = {name: free_port() for name in ("imitation", *SERVERS)}
    imitation_url = f"http://127.0.0.1:{ports['imitation']}"
    env = {
        "TUTORLANE_REDIS_URL": REDIS_URL,
        "BENCH_REDIS_URL": REDIS_URL,
        "TUTORLANE_WEBHOOK_SECRET": SECRET,
        "TUTORLANE_SWIFTCHAT_BASE_URL": imitation_url,
        "TUTORLANE_SWIFTCHAT_BOT_ID": "bench",
        "TUTORLANE_SWIFTCHAT_API_KEY": "bench",
        # The imitation has no rate limit: measure the lane, not the API's limit
        # (1,000 replies a second by default, shared among the workers).
        "TUTORLANE_SWIFTCHAT_RATE_PER_SECOND": "1000000",
        # The slow lane is measured by bench.slow_lane: events wait in the outbox.
        "TUTORLANE_AMQP_URL": "amqp://unused/",
        "TUTORLANE_VAR": str(logs / "var"),
    }
    with_reply = {"BENCH_FLOOR_REPLY_URL": f"{imitation_url}/api/bots/floor/messages"}
    floor_app = "tutorlane.bench.floor_app:app"
    commands = {
        "imitation": (["-m", "tutorlane", "dev", "swiftchat-imitation",
                       "--port", str(ports["imitation"])], env),
        "fast_lane": (["-m", "tutorlane", "serve", "--port", str(ports["fast_lane"]),
                       "--workers", str(args.workers)], env),
        "floor": (gunicorn(floor_app, ports["floor"], args.workers), env),
        "floor_with_reply": (
            gunicorn(floor_app, ports["floor_with_reply"], args.workers),
            env | with_reply,
        ),
    }  # fmt: skip
    processes = {
        name: start(command, command_env, logs / f"{name}.log")
        for name, (command, command_env) in commands.items()
    }
    try:
        wait_up(f"{imitation_url}/_script", processes["imitation"])
        for name in SERVERS:
            url = f"http://127.0.0.1:{ports[name]}/healthz"
            wait_up(url, processes[name])
        measure(args, {name: ports[name] for name in SERVERS}, processes)
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait()
        print(f"server logs in {logs}", file=sys.stderr)


if __name__ == "__main__":
    main()
