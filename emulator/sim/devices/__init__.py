"""One module per Alpaca device type; pure state on the simulation clock, no HTTP."""

from __future__ import annotations

from emulator.sim.devices.base import Device
from emulator.sim.devices.camera import Camera
from emulator.sim.devices.covercalibrator import CoverCalibrator
from emulator.sim.devices.dome import Dome
from emulator.sim.devices.filterwheel import FilterWheel
from emulator.sim.devices.focuser import Focuser
from emulator.sim.devices.observingconditions import ObservingConditions
from emulator.sim.devices.rotator import Rotator
from emulator.sim.devices.safetymonitor import SafetyMonitor
from emulator.sim.devices.switch import Switch
from emulator.sim.devices.telescope import Telescope

DEVICE_CLASSES: dict[str, type[Device]] = {
    cls.device_type: cls
    for cls in (
        Camera,
        CoverCalibrator,
        Dome,
        FilterWheel,
        Focuser,
        ObservingConditions,
        Rotator,
        SafetyMonitor,
        Switch,
        Telescope,
    )
}

#: URL name -> the CamelCase name used by the management API and alpyca.
DEVICE_TYPE_NAMES: dict[str, str] = {name: cls.type_name for name, cls in DEVICE_CLASSES.items()}
