"""The one simulation clock.

Every device model reads time here and nowhere else, so that ``time_scale`` speeds a whole
emulator up at once: at scale 100 a 60 s slew is over in 0.6 s of wall time. Device state is
computed lazily from this clock (a slew is "start time + duration"), so no model needs a thread.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Iterator


class _Frozen(threading.local):
    """Per-thread frozen instant; the class default makes an unfrozen read a plain attribute
    lookup, not a swallowed AttributeError (now() runs several times per request)."""

    t: float | None = None


class SimClock:
    """Simulated time: wall time since creation, multiplied by ``time_scale``."""

    def __init__(self, time_scale: float = 1.0, start_utc: datetime | None = None) -> None:
        if not time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale!r}")
        self.time_scale = float(time_scale)
        self._mono0 = time.monotonic()
        self._utc0 = start_utc or datetime.now(timezone.utc)
        #: The UTC of simulated second 0 as Unix seconds (what sidereal time is computed from).
        self.unix0 = self._utc0.timestamp()
        #: Simulated second that scripted timelines count from (0: the clock's start).
        self.timeline0 = 0.0
        self._frozen = _Frozen()

    def now(self) -> float:
        """Simulated seconds since the clock started (the frozen instant inside :meth:`instant`)."""
        frozen = self._frozen.t
        if frozen is not None:
            return frozen
        return (time.monotonic() - self._mono0) * self.time_scale

    @contextmanager
    def instant(self) -> Iterator[float]:
        """Within this block, in this thread, time stands still.

        A snapshot of many properties (DeviceState) must describe one instant: read one by one
        at time scale 100, RightAscension and SiderealTime would disagree by the time between the
        two reads. Never wrap anything that waits for time to pass.
        """
        outer = self._frozen.t
        if outer is not None:
            yield outer
            return
        self._frozen.t = t = self.now()
        try:
            yield t
        finally:
            self._frozen.t = None

    @contextmanager
    def at(self, t: float) -> Iterator[float]:
        """Within this block, in this thread, time stands at ``t``: for reading lazily computed
        state as it was at a moment nobody observed (where the mount pointed when an exposure
        ended). Peers then compute from the same anchors, so ``t`` should not predate a command
        that re-anchored them."""
        outer = self._frozen.t
        self._frozen.t = t
        try:
            yield t
        finally:
            self._frozen.t = outer

    def start_timeline(self, utc: datetime | None = None) -> None:
        """Make this instant t = 0 of what is scripted on the clock (weather timelines' ``at_s``),
        and, given ``utc``, the simulated UTC now. Simulated seconds go on unchanged, so nothing
        anchored to them moves. A rehearsal calls it at its timeline's first step, so set-up's
        wall time (slower on a loaded machine) shifts neither its weather nor its Sun."""
        with self.instant() as now:
            self.timeline0 = now
            if utc is not None:
                self._utc0 = utc - timedelta(seconds=now)
                self.unix0 = self._utc0.timestamp()

    def utc_at(self, t: float) -> datetime:
        """Simulated UTC at simulated second ``t``."""
        return self._utc0 + timedelta(seconds=t)

    def utcnow(self) -> datetime:
        """Simulated UTC date and time (timezone-aware)."""
        return self._utc0 + timedelta(seconds=self.now())

    def to_wall(self, sim_seconds: float) -> float:
        """Wall-clock seconds that ``sim_seconds`` of simulated time take."""
        return sim_seconds / self.time_scale
