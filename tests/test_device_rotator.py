"""Rotator (IRotatorV4) through the real alpyca client: moves, sync offset, Halt, Reverse, stuck."""

from __future__ import annotations

import time
from functools import partial

import pytest
from alpaca.exceptions import InvalidValueException, NotConnectedException, NotImplementedException
from alpaca.rotator import Rotator

from emulator import Emulator
from support import one_device, wait_for


rotator_emulator = partial(one_device, "rotator")


def test_every_property_readable():
    with rotator_emulator() as emu:
        rot = Rotator(emu.address, 0)
        for name in sorted(n for n in dir(Rotator) if n[0].isupper() and isinstance(getattr(Rotator, n), property)):
            getattr(rot, name)
        assert rot.InterfaceVersion == 4
        assert rot.CanReverse is True
        state = {item["Name"] for item in rot.DeviceState}
        assert state == {"IsMoving", "MechanicalPosition", "Position", "TimeStamp"}


def test_not_connected():
    with Emulator({"devices": [{"type": "rotator"}]}) as emu:
        rot = Rotator(emu.address, 0)
        for name in ("Position", "IsMoving", "MechanicalPosition", "TargetPosition"):
            with pytest.raises(NotConnectedException):
                getattr(rot, name)
        with pytest.raises(NotConnectedException):
            rot.MoveAbsolute(10.0)


def test_move_absolute_then_done():
    with rotator_emulator(speed_deg_s=1.0) as emu:
        rot = Rotator(emu.address, 0)
        rot.MoveAbsolute(100.0)  # 100 s simulated = 1 s wall
        assert rot.IsMoving
        assert rot.TargetPosition == pytest.approx(100.0)
        wait_for(lambda: rot.Position > 0.0, what="rotating")
        wait_for(lambda: not rot.IsMoving, what="move done")
        assert rot.Position == pytest.approx(100.0)
        assert rot.MechanicalPosition == pytest.approx(100.0)


def test_relative_move_wraps_modulo_360():
    with rotator_emulator(initial_mechanical_position=300.0) as emu:
        rot = Rotator(emu.address, 0)
        rot.Move(90.0)
        assert rot.TargetPosition == pytest.approx(30.0)
        wait_for(lambda: not rot.IsMoving, what="relative move")
        assert rot.Position == pytest.approx(30.0)
        rot.Move(-45.0)
        assert rot.TargetPosition == pytest.approx(345.0)
        wait_for(lambda: not rot.IsMoving, what="relative move back")
        assert rot.Position == pytest.approx(345.0)


def test_sync_offsets_position_not_mechanics():
    with rotator_emulator(initial_mechanical_position=10.0) as emu:
        rot = Rotator(emu.address, 0)
        rot.Sync(50.0)
        assert not rot.IsMoving
        assert rot.Position == pytest.approx(50.0)
        assert rot.MechanicalPosition == pytest.approx(10.0)
        rot.MoveAbsolute(90.0)  # in synced terms: mechanical 50
        wait_for(lambda: not rot.IsMoving, what="absolute move")
        assert rot.Position == pytest.approx(90.0)
        assert rot.MechanicalPosition == pytest.approx(50.0)
        rot.MoveMechanical(20.0)  # raw angle, ignoring the offset
        assert rot.TargetPosition == pytest.approx(60.0)  # reported in synced terms
        wait_for(lambda: not rot.IsMoving, what="mechanical move")
        assert rot.MechanicalPosition == pytest.approx(20.0)
        assert rot.Position == pytest.approx(60.0)


def test_halt_stops_in_between():
    with rotator_emulator(speed_deg_s=1.0) as emu:
        rot = Rotator(emu.address, 0)
        rot.MoveAbsolute(200.0)  # 200 s simulated = 2 s wall
        wait_for(lambda: rot.MechanicalPosition > 1.0, what="rotating")
        rot.Halt()
        assert not rot.IsMoving
        where = rot.MechanicalPosition
        assert 1.0 < where < 200.0
        time.sleep(0.05)
        assert rot.MechanicalPosition == where


def test_invalid_angles():
    with rotator_emulator() as emu:
        rot = Rotator(emu.address, 0)
        for bad in (-1.0, 360.0, 720.5):
            for call in (rot.MoveAbsolute, rot.MoveMechanical, rot.Sync):
                with pytest.raises(InvalidValueException):
                    call(bad)
        assert not rot.IsMoving and rot.Position == 0.0


def test_reverse_and_capabilities():
    with rotator_emulator() as emu:
        rot = Rotator(emu.address, 0)
        assert rot.Reverse is False
        rot.Reverse = True
        assert rot.Reverse is True
        assert rot.StepSize == pytest.approx(0.01)
    with rotator_emulator(can_reverse=False, can_halt=False, step_size_deg=None) as emu:
        rot = Rotator(emu.address, 0)
        assert rot.CanReverse is False
        with pytest.raises(NotImplementedException):
            rot.Reverse
        with pytest.raises(NotImplementedException):
            rot.Reverse = True
        with pytest.raises(NotImplementedException):
            rot.Halt()
        with pytest.raises(NotImplementedException):
            rot.StepSize


def test_stuck_rotator_never_arrives_until_unstuck():
    with rotator_emulator() as emu:
        rot = Rotator(emu.address, 0)
        emu.set_state("rotator", 0, Stuck=True)
        rot.MoveAbsolute(20.0)  # would take 2 s simulated
        time.sleep(0.2)  # 20 s simulated
        assert rot.IsMoving
        assert rot.Position == 0.0
        emu.set_state("rotator", 0, Stuck=False)
        wait_for(lambda: not rot.IsMoving, what="move after unstick")
        assert rot.Position == pytest.approx(20.0)
