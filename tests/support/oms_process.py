"""The OMS as a separate process (``python -m trader oms``), for kill/restart tests."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM a child still running, then SIGKILL after 30 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextmanager
def oms_process(env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``trader oms`` on ``port`` with ``env`` (output appended to ``log``); SIGTERM, then kill, at exit."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trader", "oms", "--port", str(port), "--log-level", "WARNING"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        terminate(proc)


async def healthy(http: httpx.AsyncClient, proc: subprocess.Popen[bytes], log: Path) -> bool:
    """``/health`` says ok; an AssertionError with the log's tail when the process died."""
    if proc.poll() is not None:
        raise AssertionError(f"OMS exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
    try:
        return (await http.get("/health")).json().get("status") == "ok"
    except (httpx.HTTPError, ValueError):
        return False
