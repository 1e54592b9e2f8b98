"""Focuser (IFocuserV4) through the real alpyca client: moves, Halt, limits, temperature, TempComp, stuck."""

from __future__ import annotations

import time
from functools import partial

import pytest
from alpaca.exceptions import (
    InvalidOperationException,
    InvalidValueException,
    NotConnectedException,
    NotImplementedException,
)
from alpaca.focuser import Focuser

from emulator import Emulator
from emulator.sim.clock import SimClock
from emulator.sim.devices.focuser import Focuser as FocuserModel
from emulator.sim.devices.focuser import FocuserConfig
from support import one_device, wait_for


focuser_emulator = partial(one_device, "focuser")


def test_every_property_readable():
    with focuser_emulator() as emu:
        foc = Focuser(emu.address, 0)
        for name in sorted(n for n in dir(Focuser) if n[0].isupper() and isinstance(getattr(Focuser, n), property)):
            getattr(foc, name)
        assert foc.InterfaceVersion == 4
        assert foc.Absolute and foc.MaxStep == 50000 and foc.MaxIncrement == 50000
        state = {item["Name"]: item["Value"] for item in foc.DeviceState}
        assert set(state) == {"IsMoving", "Position", "Temperature", "TimeStamp"}


def test_not_connected():
    with Emulator({"devices": [{"type": "focuser"}]}) as emu:
        foc = Focuser(emu.address, 0)
        for name in ("Position", "IsMoving", "Temperature", "MaxStep"):
            with pytest.raises(NotConnectedException):
                getattr(foc, name)
        with pytest.raises(NotConnectedException):
            foc.Move(100)


def test_absolute_move_then_done():
    with focuser_emulator(speed_steps_s=10.0, initial_position=1000) as emu:
        foc = Focuser(emu.address, 0)
        foc.Move(2000)  # 100 s simulated = 1 s wall: room to see it moving
        assert foc.IsMoving
        wait_for(lambda: foc.Position > 1000, what="position changing")
        wait_for(lambda: not foc.IsMoving, what="move done")
        assert foc.Position == 2000


def test_halt_stops_in_between():
    with focuser_emulator(speed_steps_s=100.0, initial_position=0) as emu:
        foc = Focuser(emu.address, 0)
        foc.Move(10000)  # 100 s simulated = 1 s wall: long enough to halt midway
        wait_for(lambda: foc.Position > 0, what="moving")
        foc.Halt()
        assert not foc.IsMoving
        where = foc.Position
        assert 0 < where < 10000
        time.sleep(0.05)
        assert foc.Position == where


def test_out_of_range_is_invalid_value():
    with focuser_emulator(max_step=1000, initial_position=500) as emu:
        foc = Focuser(emu.address, 0)
        for bad in (-1, 1001, 100000):
            with pytest.raises(InvalidValueException):
                foc.Move(bad)
        assert foc.Position == 500 and not foc.IsMoving


def test_relative_focuser():
    with focuser_emulator(absolute=False, max_step=1000, max_increment=300, initial_position=900) as emu:
        foc = Focuser(emu.address, 0)
        assert foc.Absolute is False
        assert foc.MaxIncrement == 300
        with pytest.raises(NotImplementedException):
            foc.Position
        for bad in (301, -301):
            with pytest.raises(InvalidValueException):
                foc.Move(bad)
        foc.Move(200)  # stops at MaxStep by itself
        wait_for(lambda: not foc.IsMoving, what="relative move")
        assert emu.get_state("focuser", 0)["StepPosition"] == 1000
        foc.Move(-300)
        wait_for(lambda: not foc.IsMoving, what="relative move back")
        assert emu.get_state("focuser", 0)["StepPosition"] == 700
        state = {item["Name"] for item in foc.DeviceState}
        assert "Position" not in state


def test_capability_flags_make_members_not_implemented():
    opts = dict(can_halt=False, step_size_um=None, temperature_available=False, temp_comp_available=False)
    with focuser_emulator(**opts) as emu:
        foc = Focuser(emu.address, 0)
        with pytest.raises(NotImplementedException):
            foc.Halt()
        with pytest.raises(NotImplementedException):
            foc.StepSize
        with pytest.raises(NotImplementedException):
            foc.Temperature
        assert foc.TempCompAvailable is False
        assert foc.TempComp is False  # readable, always False
        with pytest.raises(NotImplementedException):
            foc.TempComp = True


def test_temperature_drifts_slowly_and_deterministically():
    cfg = FocuserConfig(temperature_c=5.0, temperature_swing_c=2.0, temperature_period_s=3600.0)

    def night(seed: int) -> list[float]:
        model = FocuserModel(cfg, SimClock(), seed=seed)
        return [model._temperature_at(t) for t in range(0, 7200, 60)]

    a, b, other = night(1), night(1), night(2)
    assert a == b
    assert a != other
    assert all(3.0 - 1e-9 <= t <= 7.0 + 1e-9 for t in a)
    assert max(abs(x - y) for x, y in zip(a, a[1:])) < 0.5  # slow: under half a degree a minute
    assert max(a) - min(a) > 0.5  # but it does drift


def test_temperature_is_reported_through_alpaca():
    with focuser_emulator(temperature_c=-3.0, temperature_swing_c=1.0) as emu:
        foc = Focuser(emu.address, 0)
        assert -4.0 - 1e-6 <= foc.Temperature <= -2.0 + 1e-6


def test_move_with_tempcomp_on_follows_the_v4_rules():
    # IFocuserV3+: Move while TempComp is on is allowed (the InvalidOperation was IFocuserV2 only)
    with focuser_emulator(time_scale=10, initial_position=1000) as emu:
        foc = Focuser(emu.address, 0)
        foc.TempComp = True
        assert foc.TempComp
        foc.Move(1500)
        wait_for(lambda: not foc.IsMoving, what="move with TempComp on")
        assert abs(foc.Position - 1500) <= 10  # compensation may have nudged it by a step or two
        foc.TempComp = False
        assert not foc.TempComp


def test_legacy_tempcomp_blocks_move():
    with focuser_emulator(tempcomp_blocks_move=True) as emu:
        foc = Focuser(emu.address, 0)
        foc.TempComp = True
        with pytest.raises(InvalidOperationException):
            foc.Move(100)
        foc.TempComp = False
        foc.Move(100)


def test_tempcomp_tracks_temperature():
    # a wide temperature swing and a strong coefficient: the position follows the temperature
    k = -100.0
    opts = dict(temperature_swing_c=10.0, temperature_period_s=3600.0, tempcomp_steps_per_c=k)
    with focuser_emulator(initial_position=25000, **opts) as emu:
        foc = Focuser(emu.address, 0)
        foc.TempComp = True
        s0 = emu.get_state("focuser", 0)  # Position and Temperature read at one instant
        wait_for(
            lambda: abs(emu.get_state("focuser", 0)["Temperature"] - s0["Temperature"]) > 1.0,
            what="temperature change",
        )
        s1 = emu.get_state("focuser", 0)
        assert not s1["IsMoving"]
        moved = s1["Position"] - s0["Position"]
        assert abs(moved) >= 90
        assert moved == pytest.approx(k * (s1["Temperature"] - s0["Temperature"]), abs=2)


def test_stuck_focuser_never_arrives_until_unstuck():
    with focuser_emulator(initial_position=1000) as emu:
        foc = Focuser(emu.address, 0)
        emu.set_state("focuser", 0, Stuck=True)
        foc.Move(1200)  # would take 0.2 s simulated
        time.sleep(0.2)  # 20 s simulated: long past when it should have arrived
        assert foc.IsMoving
        assert foc.Position == 1000
        emu.set_state("focuser", 0, Stuck=False)
        wait_for(lambda: not foc.IsMoving, what="move after unstick")
        assert foc.Position == 1200


def test_stuck_focuser_can_be_halted():
    with focuser_emulator(initial_position=1000) as emu:
        foc = Focuser(emu.address, 0)
        emu.set_state("focuser", 0, Stuck=True)
        foc.Move(5000)
        assert foc.IsMoving
        foc.Halt()
        assert not foc.IsMoving
        assert foc.Position == 1000


def test_bad_config_names_the_problem():
    with pytest.raises(ValueError, match="initial_position"):
        Emulator({"devices": [{"type": "focuser", "max_step": 100, "initial_position": 200}]})
    with pytest.raises(ValueError, match="max_increment"):
        Emulator({"devices": [{"type": "focuser", "max_step": 100, "max_increment": 200}]})
