"""The devices of one emulator, built from their configs on its clock; nothing here is global."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime
from typing import Iterator, Sequence

from emulator.sim.clock import SimClock
from emulator.sim.devices import DEVICE_CLASSES, DEVICE_TYPE_NAMES
from emulator.sim.devices.base import Device, DeviceConfig
from emulator.sim.observatory import Observatory

_UID_NAMESPACE = uuid.UUID("5b0a7e1c-4a8e-4f7b-9d2c-3e6f1a2b4c5d")


class Registry:
    """``(device_type, number) -> Device`` plus the clock they run on and the site's state.

    ``devices`` are the device configs (validated models), ``seed`` seeds their synthetic data,
    ``sunlight`` is the configured daylight override of :attr:`observatory`, ``start_utc`` the
    simulated UTC at start (None: now).
    """

    def __init__(self, devices: Sequence[DeviceConfig], time_scale: float = 1.0, seed: int = 0,
                 sunlight: bool | None = None, start_utc: datetime | None = None) -> None:
        self.device_configs = tuple(devices)
        self.seed = seed
        self.clock = SimClock(time_scale, start_utc)
        self.observatory = Observatory(sunlight)
        self._lock = threading.Lock()
        self._devices: dict[tuple[str, int], Device] = {}
        self.reset()

    def reset(self) -> None:
        """Rebuild every device from its config and the observatory's state: as at start."""
        built: dict[tuple[str, int], Device] = {}
        for dev_cfg in self.device_configs:
            cls = DEVICE_CLASSES[dev_cfg.type]
            built[(dev_cfg.type, dev_cfg.number)] = cls(dev_cfg, self.clock, self.seed)
        for device in built.values():
            device.site = self
        with self._lock:
            self._devices = built
        self.observatory.reset()

    def reset_device(self, device_type: str, number: int) -> Device:
        """Rebuild one device from its config (the others keep their state); KeyError if absent."""
        old = self._devices[(device_type, number)]
        fresh = DEVICE_CLASSES[device_type](old.config, self.clock, self.seed)
        fresh.site = self
        with self._lock:
            self._devices = {**self._devices, (device_type, number): fresh}
        return fresh

    def get(self, device_type: str, number: int) -> Device | None:
        return self._devices.get((device_type, number))

    def first(self, device_type: str) -> Device | None:
        """The lowest-numbered device of a type: the one in the optical train (read-only use:
        a device looks its peers up here on each use, as a reset rebuilds them)."""
        numbers = [number for kind, number in self._devices if kind == device_type]
        return self._devices[(device_type, min(numbers))] if numbers else None

    def __iter__(self) -> Iterator[Device]:
        return iter(list(self._devices.values()))

    def __len__(self) -> int:
        return len(self._devices)

    def unique_id(self, device: Device) -> str:
        """Stable across restarts for the same config: derived from type, number and name."""
        if device.config.unique_id:
            return device.config.unique_id
        return str(uuid.uuid5(_UID_NAMESPACE, f"{device.device_type}/{device.number}/{device.name}"))

    def configured_devices(self) -> list[dict]:
        return [
            {
                "DeviceName": d.name,
                "DeviceType": DEVICE_TYPE_NAMES[d.device_type],
                "DeviceNumber": d.number,
                "UniqueID": self.unique_id(d),
            }
            for d in sorted(self, key=lambda d: (d.device_type, d.number))
        ]
