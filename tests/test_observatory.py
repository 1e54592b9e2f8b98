"""The observatory's site state on the registry: the daylight override, configured and reset."""

from __future__ import annotations

import pytest

from emulator import Emulator
from emulator.config import ConfigError
from emulator.sim.observatory import Observatory


def test_sunlight_defaults_to_following_the_sun_and_resets_to_configured():
    with Emulator() as emu:
        obs = emu.registry.observatory
        assert obs.sunlight is None
        obs.sunlight = True
        assert emu.registry.observatory.sunlight is True
        emu.reset()
        assert emu.registry.observatory.sunlight is None


def test_configured_sunlight_is_the_reset_state():
    with Emulator({"emulator": {"sunlight": False}, "devices": [{"type": "safetymonitor"}]}) as emu:
        obs = emu.registry.observatory
        assert obs.sunlight is False
        obs.sunlight = True
        emu.registry.reset()
        assert obs.sunlight is False


def test_sunlight_takes_only_true_false_or_none():
    obs = Observatory()
    with pytest.raises(TypeError, match="sunlight must be True, False or None"):
        obs.sunlight = "yes"
    assert obs.sunlight is None
    with pytest.raises(ConfigError, match="sunlight"):
        Emulator({"emulator": {"sunlight": "bright"}})


def test_devices_see_their_site_and_the_first_device_of_a_type():
    from emulator.sim.registry import Registry
    from emulator.config import config_from_dict

    cfg = config_from_dict({"devices": [{"type": "focuser", "number": 3}, {"type": "focuser", "number": 1}, {"type": "camera"}]})
    reg = Registry(cfg.devices)
    cam = reg.get("camera", 0)
    assert cam.site is reg
    assert reg.first("focuser") is reg.get("focuser", 1)
    assert reg.first("telescope") is None
    fresh = reg.reset_device("focuser", 1)
    assert fresh.site is reg and reg.first("focuser") is fresh
    reg.reset()
    assert reg.get("camera", 0).site is reg and reg.get("camera", 0) is not cam
