"""Polling in the device process: one thread per polled member, at a fixed rate, through outages.

Each result goes three ways: the device process's own ``latest`` view, a push frame to the
caller's poll cache (``poll_latest`` there never waits), and the queue (astra.reporting). A
failed read keeps the last good value and its time, so staleness grows during an outage; reads
back off exponentially (up to ``max_backoff_s``) and the poller recovers by itself.
"""

from __future__ import annotations

import datetime as _dt
import math
import threading
import time
import zlib
from typing import Any, Callable

from astra.errors import RemoteDeviceError
from astra.reporting import Reporter


def utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


class _Poller:
    """One polled member: its thread, interval and stop flag."""

    def __init__(self, method: str, delay: float) -> None:
        self.method = method
        self.delay = delay
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        #: monotonic time of the next read; changed under the schedule condition only
        self.next_at = time.monotonic()


class Pollers:
    """The pollers of one device. ``read(method)`` makes one read (no retries) or raises RemoteDeviceError;
    ``push(what, data)`` sends a result to the caller; polls start once ``ready`` is set."""

    def __init__(
        self,
        device_name: str,
        *,
        read: Callable[[str], Any],
        push: Callable[[str, Any], None],
        report: Reporter,
        stopping: threading.Event,
        ready: threading.Event,
        max_backoff_s: float,
        join_timeout: float,
    ) -> None:
        self.device_name = device_name
        self._read = read
        self._push = push
        self._report = report
        self._stopping = stopping
        self._ready = ready
        self.max_backoff_s = max_backoff_s
        self.join_timeout = join_timeout
        self._pollers: dict[str, _Poller] = {}
        self._lock = threading.Lock()  # the poller table
        self._schedule = threading.Condition()  # next_at, paused
        self._paused = False
        self._latest: dict[str, dict[str, Any]] = {}
        self._latest_lock = threading.Lock()

    # -- control -----------------------------------------------------------------------------------

    def start(self, method: str, delay: float) -> None:
        """Start the poll thread of ``method`` (exactly one per member; a repeat changes the interval)."""
        with self._lock:
            poller = self._pollers.get(method)
            if poller is not None:
                with self._schedule:
                    poller.delay = delay
                    poller.next_at = min(poller.next_at, time.monotonic() + delay)
                    self._schedule.notify_all()
                self._report.log("info", f"poll {method}: interval now {delay:g} s")
                return
            poller = _Poller(method, delay)
            poller.thread = threading.Thread(target=self.loop, args=(method,), name=f"astra-poll[{method}]", daemon=True)
            self._pollers[method] = poller
            poller.thread.start()
        self._report.log("info", f"polling {method} every {delay:g} s")

    def stop(self, method: str | None = None, join_timeout: float | None = None) -> list[str]:
        """Stop polling ``method`` (None: all) and wait for the threads; returns the members stopped."""
        with self._lock:
            if method is None:
                stopped = list(self._pollers.values())
                self._pollers.clear()
            else:
                poller = self._pollers.pop(method, None)
                stopped = [poller] if poller is not None else []
        for poller in stopped:
            poller.stop.set()
        with self._schedule:
            self._schedule.notify_all()
        deadline = time.monotonic() + (self.join_timeout if join_timeout is None else join_timeout)
        for poller in stopped:
            if poller.thread is not None and poller.thread is not threading.current_thread():
                poller.thread.join(max(0.0, deadline - time.monotonic()))
        return [p.method for p in stopped]

    def set_paused(self, paused: bool) -> None:
        with self._schedule:
            self._paused = paused
            self._schedule.notify_all()
        self._report.log("info", "polls paused" if paused else "polls resumed")

    def methods(self) -> list[str]:
        with self._lock:
            return list(self._pollers)

    def latest(self) -> dict[str, dict[str, Any]] | None:
        """The device process's view of the latest polls (None before the first good one)."""
        with self._latest_lock:
            return {m: dict(e) for m, e in self._latest.items()} or None

    # -- results -----------------------------------------------------------------------------------

    def record(self, method: str, value: Any, when: _dt.datetime) -> None:
        with self._latest_lock:
            self._latest[method] = {"value": value, "datetime": when, "error": None, "error_time": None}
        self._push("poll", {"method": method, "ok": True, "value": value, "datetime": when})
        self._report.polled(method, value, when)

    def record_error(self, method: str, err: Any, when: _dt.datetime) -> None:
        text = str(err)
        with self._latest_lock:
            entry = self._latest.get(method)
            if entry is not None:
                self._latest[method] = dict(entry, error=text, error_time=when)
        self._push("poll", {"method": method, "ok": False, "error": text, "error_time": when})

    # -- the poll thread ---------------------------------------------------------------------------

    def loop(self, method: str) -> None:
        """Read ``method`` at a fixed rate; ride out outages with backoff, recover by itself."""
        with self._lock:
            poller = self._pollers.get(method)
        if poller is None:
            return
        while not self._ready.wait(0.2):  # polls start once the connect has finished
            if poller.stop.is_set() or self._stopping.is_set():
                return
        failures = 0
        with self._schedule:
            poller.next_at = time.monotonic() + self._phase(method, poller.delay)
        while self._wait_slot(poller):
            try:
                value = self._read(method)
            except RemoteDeviceError as err:
                failures += 1
                self.record_error(method, err, utcnow())
                backoff = min(poller.delay * (2 ** failures), max(poller.delay, self.max_backoff_s))
                if failures == 1:
                    self._report.log("warning", f"poll {method} failed: {err}; backing off")
                else:
                    self._report.log("debug", f"poll {method} failed {failures} times in a row: {err}")
                self._set_next(poller, time.monotonic() + backoff)
                continue
            if poller.stop.is_set():  # stopped while the read was in flight: record nothing more
                return
            self.record(method, value, utcnow())
            if failures:
                self._report.log("info", f"poll {method} recovered after {failures} failed reads")
                failures = 0
                self._set_next(poller, time.monotonic() + poller.delay)
            else:
                # Fixed rate: the next slot counts from the last one, so read time does not add up;
                # a read that took longer than the interval skips slots, never bursts.
                self._set_next(poller, max(poller.next_at + poller.delay, time.monotonic()))

    def _wait_slot(self, poller: _Poller) -> bool:
        """Sleep until ``poller.next_at`` (and while paused) without busy-waiting; False when the poll must end."""
        with self._schedule:
            paused = False
            while True:
                if poller.stop.is_set() or self._stopping.is_set():
                    return False
                if self._paused:
                    paused = True
                    self._schedule.wait(0.5)
                    continue
                if paused:
                    # Resume on the old grid (keep the phase), so resumed polls do not all fire at once.
                    paused = False
                    now = time.monotonic()
                    if poller.next_at < now:
                        poller.next_at += math.ceil((now - poller.next_at) / poller.delay) * poller.delay
                remaining = poller.next_at - time.monotonic()
                if remaining <= 0:
                    return True
                self._schedule.wait(remaining)

    def _phase(self, method: str, delay: float) -> float:
        """Where in its interval a member's schedule starts: spread by name, so polls started
        together (a start_poll loop, many devices) do not reach the server in bursts."""
        fraction = (zlib.crc32(f"{self.device_name}/{method}".encode()) % 1000) / 1000
        return fraction * min(delay, 1.0)

    def _set_next(self, poller: _Poller, when: float) -> None:
        with self._schedule:
            poller.next_at = when
