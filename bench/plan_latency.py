"""How soon the Navigator's plan is in a student's session after they answer.

Runs the embedded default in process (fakeredis, in-process queues, SQLite, the
projection runner with the Navigator), lets S students answer questions at once,
and after each answer times how long until the session holds a plan made for the
question the student is now at: the slow lane, the projections and the write-back
together. A student typing their next answer takes seconds; this is the margin.
Prints one JSON line per figure.

    python -m tutorlane.bench.plan_latency --students 50 --answers 6
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from tutorlane.bootstrap import Runtime, start_runtime
from tutorlane.domain.analysis import expected_answer
from tutorlane.domain.messages import Inbound, Kind
from tutorlane.entrypoints.settings import Settings

WAIT_SECONDS = 30.0


async def student(runtime: Runtime, number: int, answers: int) -> list[float]:
    """Answer `answers` questions right; return the seconds until each plan came."""
    phone = f"+9170000{number:05d}"
    pseudonym = runtime.handler.pseudonymise(phone)
    waits = []
    text = "hi"
    for step in range(answers + 1):
        message = Inbound(f"{phone}-{step}", Kind.TEXT, text, sent_at=step)
        await runtime.handler.handle(phone, message)
        sent = time.perf_counter()
        session = await runtime.store.load(pseudonym)
        node = session.node
        # A right answer moves the student on: wait for a plan for the new node.
        planned = False
        while not planned and time.perf_counter() - sent < WAIT_SECONDS:
            session = await runtime.store.load(pseudonym)
            planned = bool(session.plan) and session.plan_for == node
            if not planned:
                await asyncio.sleep(0.005)
        # The first plan waits for the runner to start: it is not counted.
        if step > 0 and planned:
            waits.append(time.perf_counter() - sent)
        if not session.node:
            break
        text = expected_answer(runtime.course.node(session.node))
    return waits


async def measure(students: int, answers: int) -> None:
    """Run the students at once and print the latency of their plans."""
    with tempfile.TemporaryDirectory() as folder:
        runtime = await start_runtime(Settings(var_dir=Path(folder)), secret="s")
        try:
            results = await asyncio.gather(
                *(student(runtime, number, answers) for number in range(students))
            )
        finally:
            await runtime.close()
    waits = sorted(wait for waits in results for wait in waits)
    expected = students * answers
    context = {
        "students": students,
        "answers": expected,
        "planned": len(waits),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load": round(os.getloadavg()[0], 1),
        "setup": "embedded default: fakeredis, in-process queues, SQLite",
    }
    mean = statistics.fmean(waits) if waits else 0.0
    figures = {"mean": mean}
    for name, quantile in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        at = min(len(waits) - 1, int(quantile * len(waits)))
        figures[name] = waits[at] if waits else 0.0
    for name, value in figures.items():
        line = {
            "figure": f"plan latency {name}",
            "value": round(value * 1000, 1),
            "unit": "ms",
            **context,
        }
        print(json.dumps(line), flush=True)


def main() -> None:
    """Parse the options and measure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=50)
    parser.add_argument("--answers", type=int, default=6)
    options = parser.parse_args()
    asyncio.run(measure(options.students, options.answers))


if __name__ == "__main__":
    main()
