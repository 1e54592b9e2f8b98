"""Shared fixtures: a really served emulator per test, and a check that nothing leaks."""

from __future__ import annotations

import threading
import time

import pytest

from emulator import Emulator


@pytest.fixture
def emu():
    """One device of each type, on a free port, at time scale 1."""
    with Emulator() as e:
        yield e


@pytest.fixture
def fast_emu():
    """One device of each type at time scale 100: a 60 s slew takes 0.6 s."""
    with Emulator(time_scale=100) as e:
        yield e


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Every thread a test starts must be gone shortly after it ends."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while True:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not extra, f"threads left behind: {[t.name for t in extra]}"
