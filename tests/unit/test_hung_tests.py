"""A hung test fails alone and names the await it hung on (tests/hangs.py), and the run goes on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

HANGING_SUITE = '''
import asyncio


async def wait_for_a_reply_that_never_comes(event):
    await event.wait()


async def test_hangs():
    await wait_for_a_reply_that_never_comes(asyncio.Event())


async def test_after_the_hang():
    await asyncio.sleep(0)
'''


def test_a_hung_async_test_fails_with_its_await_and_the_next_test_still_runs(tmp_path: Path) -> None:
    (tmp_path / "test_hanging.py").write_text(HANGING_SUITE, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = session\n"
        "asyncio_default_test_loop_scope = session\ntimeout = 1\n",
        encoding="utf-8",
    )
    environment = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.hangs", "-p", "no:cacheprovider", "-q", "test_hanging.py"],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 failed, 1 passed" in run.stdout, run.stdout
    assert "Timeout" in run.stdout
    assert "pending asyncio tasks" in run.stdout
    # The task's chain of awaits, down to the one that never returned:
    assert "in wait_for_a_reply_that_never_comes" in run.stdout
    assert "await event.wait()" in run.stdout
