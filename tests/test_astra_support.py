"""Helpers for the astra tests: a started AlpacaDevice whose queue is drained, and leak checks.

Imported by the other tests/test_astra_*.py modules; holds no tests itself.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
from typing import Any, Callable, Iterator

import pytest

from astra.alpaca_device_process import AlpacaDevice
from astra.queues import QueueDrain
from support import wait_until

#: pids of every device process the astra tests started, checked at the end of each module.
STARTED_PIDS: list[int] = []

FAST_RETRY = {"tries": 3, "backoff_s": 0.05, "backoff_factor": 2.0, "max_backoff_s": 0.2}


class QueueCollector:
    """Drains a multiprocessing queue on a thread, so a child never blocks on a full pipe at exit."""

    def __init__(self, q: Any) -> None:
        self.queue = q
        self._drain = QueueDrain(q, name="test-queue-collector").start()

    def items(self) -> list[Any]:
        return list(self._drain.items)

    def payloads(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [p for _, p in self.items() if kind is None or p.get("type") == kind]

    def logs(self, level: str | None = None) -> list[str]:
        return [p["data"][1] for p in self.payloads("log") if level is None or p["data"][0] == level]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        return wait_until(predicate, timeout)

    def close(self) -> None:
        self._drain.stop(10)


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer exists: exited and reaped (a zombie still counts as left behind)."""
    return not os.path.exists(f"/proc/{pid}")


def closed_port() -> int:
    """A local port with nothing listening on it."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@contextlib.contextmanager
def running_device(
    address: str,
    device_type: str = "SafetyMonitor",
    number: int = 0,
    *,
    name: str | None = None,
    start_method: str | None = "forkserver",
    stop_timeout: float = 5.0,
    device_class: type[AlpacaDevice] = AlpacaDevice,
    **kwargs: Any,
) -> Iterator[tuple[AlpacaDevice, QueueCollector]]:
    """Start an AlpacaDevice (default: forkserver, no inherited sockets; ``device_class`` may be a
    subclass) and always stop it."""
    ctx = multiprocessing.get_context(start_method)
    q = ctx.Queue()
    kwargs.setdefault("call_timeout", 10.0)
    kwargs.setdefault("http_timeout", 2.0)
    kwargs.setdefault("retry", FAST_RETRY)
    dev = device_class(address, device_type, number, name or f"test-{device_type}", q, start_method=start_method, **kwargs)
    collector = QueueCollector(q)
    try:
        dev.start()
        STARTED_PIDS.append(dev.pid)
        yield dev, collector
    finally:
        try:
            dev.stop(timeout=stop_timeout)
            if dev.pid is not None:
                assert not dev.is_alive(), "device process still alive after stop()"
                assert wait_until(lambda: process_gone(dev.pid), 5.0), f"device process {dev.pid} left behind"
        finally:
            collector.close()
            q.close()
            q.join_thread()


@pytest.fixture(scope="module", autouse=True)
def no_device_process_left() -> Iterator[None]:
    """Module-level check: every device process the tests started is gone (reaped, not a zombie)."""
    yield
    left = [pid for pid in STARTED_PIDS if not wait_until(lambda p=pid: process_gone(p), 5.0)]
    children = [p for p in multiprocessing.active_children() if isinstance(p, AlpacaDevice)]
    assert not left, f"device processes left behind: {left}"
    assert not children, f"AlpacaDevice children still active: {children}"


def child_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")
