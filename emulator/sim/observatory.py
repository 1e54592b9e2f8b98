"""The observatory's own state, beside its devices: what is true of the site rather than of one device.

One :class:`Observatory` hangs off each Registry (``registry.observatory``). It holds the daylight
override the sky honours: ``sunlight`` True (day, for flats), False (night), or None (follow the
Sun's computed altitude). ``reset()`` returns it to the configured value, as a device reset does.
"""

from __future__ import annotations

import threading


class Observatory:
    """Site-wide simulation state; thread-safe (HTTP workers set it while devices read it)."""

    def __init__(self, sunlight: bool | None = None) -> None:
        self._check(sunlight)
        self._lock = threading.Lock()
        self.configured_sunlight = sunlight
        self._sunlight = sunlight

    @staticmethod
    def _check(value: object) -> None:
        if value is not None and not isinstance(value, bool):
            raise TypeError(f"sunlight must be True, False or None (follow the Sun), not {value!r}")

    @property
    def sunlight(self) -> bool | None:
        """The daylight override: True day, False night, None = whatever the Sun's altitude says."""
        with self._lock:
            return self._sunlight

    @sunlight.setter
    def sunlight(self, value: bool | None) -> None:
        self._check(value)
        with self._lock:
            self._sunlight = value

    def reset(self) -> None:
        """Back to the configured state."""
        with self._lock:
            self._sunlight = self.configured_sunlight
