"""`tutorlane chat` with piped input plays the shipped course, in process or remote."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tutorlane.bootstrap import pick_course
from tutorlane.domain.course import NumberAnswer
from tutorlane.entrypoints.settings import Settings
from tutorlane.tests.processes import Process, free_port, http_up


def play(lines: list[str], var: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tutorlane", "chat", "--phone", "+919600000001"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TUTORLANE_VAR": str(var)},
        check=False,
    )


def first_questions() -> tuple[str, str, str]:
    course = pick_course(Settings())
    first = course.node(course.start)
    assert isinstance(first.answer, NumberAnswer)
    second = course.node(first.next.right or "")
    return (
        first.question.in_language("en"),
        str(int(first.answer.value)),
        second.question.in_language("en"),
    )


def test_piped_chat_plays_the_first_questions_in_process_and_exits(
    tmp_path: Path,
) -> None:
    question, answer, next_question = first_questions()

    result = play(["hi", answer, "hint", "skip"], tmp_path / "var")

    assert result.returncode == 0, result.stderr
    assert "no server running" in result.stderr
    assert question in result.stdout and next_question in result.stdout
    assert result.stdout.count("you> ") == 4


def test_piped_chat_talks_to_a_running_server(tmp_path: Path) -> None:
    question, answer, next_question = first_questions()
    port = free_port()
    env = {"TUTORLANE_VAR": str(tmp_path / "var")}
    server = Process(["serve", "--port", str(port)], env, tmp_path / "serve.log")
    server.start().wait_until(http_up(f"http://127.0.0.1:{port}/healthz"))
    try:
        result = play(["hi", answer], tmp_path / "var")
    finally:
        server.stop()

    assert result.returncode == 0, result.stderr
    assert "no server running" not in result.stderr
    assert question in result.stdout and next_question in result.stdout


def test_serve_refuses_a_port_already_taken(tmp_path: Path) -> None:
    port = free_port()
    env = {"TUTORLANE_VAR": str(tmp_path / "var")}
    first = Process(["serve", "--port", str(port)], env, tmp_path / "first.log")
    first.start().wait_until(http_up(f"http://127.0.0.1:{port}/healthz"))
    try:
        second = subprocess.run(
            [sys.executable, "-m", "tutorlane", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, **env},
            check=False,
        )
    finally:
        first.stop()

    assert second.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in second.stderr
