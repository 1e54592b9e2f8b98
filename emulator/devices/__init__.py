"""One module per Alpaca device type; pure state on the simulation clock, no HTTP."""

from __future__ import annotations

from emulator.devices.base import Device
from emulator.devices.camera import Camera
from emulator.devices.covercalibrator import CoverCalibrator
from emulator.devices.dome import Dome
from emulator.devices.filterwheel import FilterWheel
from emulator.devices.focuser import Focuser
from emulator.devices.observingconditions import ObservingConditions
from emulator.devices.rotator import Rotator
from emulator.devices.safetymonitor import SafetyMonitor
from emulator.devices.switch import Switch
from emulator.devices.telescope import Telescope

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
