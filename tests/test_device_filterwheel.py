"""FilterWheel (IFilterWheelV3) through the real alpyca client: names, offsets, moves, stuck wheel."""

from __future__ import annotations

import time
from typing import Any

import pytest
from alpaca.exceptions import InvalidValueException, NotConnectedException
from alpaca.filterwheel import FilterWheel

from emulator import Emulator
from emulator.config import ConfigError
from support import one_device, wait_for

NAMES = ["L", "R", "G", "B", "Ha", "OIII", "SII", "Dark"]
OFFSETS = [0, 10, 12, 14, -30, -20, -25, 0]


def wheel_emulator(time_scale: float = 100, **options: Any) -> Emulator:
    return one_device("filterwheel", time_scale, **{"names": NAMES, "focus_offsets": OFFSETS, **options})


def test_every_property_readable_and_from_config():
    with wheel_emulator() as emu:
        fw = FilterWheel(emu.address, 0)
        for name in sorted(n for n in dir(FilterWheel) if n[0].isupper() and isinstance(getattr(FilterWheel, n), property)):
            getattr(fw, name)
        assert fw.InterfaceVersion == 3
        assert fw.Names == NAMES
        assert fw.FocusOffsets == OFFSETS
        assert fw.Position == 0
        assert {item["Name"] for item in fw.DeviceState} == {"Position", "TimeStamp"}


def test_offsets_default_to_zero():
    with Emulator({"devices": [{"type": "filterwheel", "connected": True, "names": ["A", "B"], "focus_offsets": None}]}) as emu:
        assert FilterWheel(emu.address, 0).FocusOffsets == [0, 0]


def test_not_connected():
    with Emulator({"devices": [{"type": "filterwheel"}]}) as emu:
        fw = FilterWheel(emu.address, 0)
        for name in ("Position", "Names", "FocusOffsets"):
            with pytest.raises(NotConnectedException):
                getattr(fw, name)
        with pytest.raises(NotConnectedException):
            fw.Position = 1


def test_move_reads_minus_one_then_arrives():
    with wheel_emulator(slot_time_s=25.0) as emu:  # 25 s simulated per slot = 0.25 s wall
        fw = FilterWheel(emu.address, 0)
        fw.Position = 3
        assert fw.Position == -1
        wait_for(lambda: fw.Position != -1, what="wheel stopped")
        assert fw.Position == 3
        state = {item["Name"]: item["Value"] for item in fw.DeviceState}
        assert state["Position"] == 3


def test_move_time_is_proportional_to_slots_travelled():
    with wheel_emulator(slot_time_s=10.0) as emu:
        model = emu.device("filterwheel", 0)
        fw = FilterWheel(emu.address, 0)
        fw.Position = 2  # two slots forward
        with model.lock:
            _, _, dist, target = model._motion
        assert (dist, target) == (2, 2)
        wait_for(lambda: fw.Position == 2, what="first move")
        fw.Position = 7  # 8 slots: the short way is 3 back through 0
        with model.lock:
            _, _, dist, _ = model._motion
        assert dist == -3
        wait_for(lambda: fw.Position == 7, what="second move")
    with wheel_emulator(slot_time_s=10.0, unidirectional=True, initial_position=2) as emu:
        model = emu.device("filterwheel", 0)
        FilterWheel(emu.address, 0).Position = 1
        with model.lock:
            _, _, dist, _ = model._motion
        assert dist == 7  # forward only: all the way round


def test_same_position_is_immediate():
    with wheel_emulator(slot_time_s=50.0, initial_position=4) as emu:
        fw = FilterWheel(emu.address, 0)
        fw.Position = 4
        assert fw.Position == 4


def test_out_of_range_is_invalid_value():
    with wheel_emulator() as emu:
        fw = FilterWheel(emu.address, 0)
        for bad in (-1, len(NAMES), 100):
            with pytest.raises(InvalidValueException):
                fw.Position = bad
        assert fw.Position == 0


def test_stuck_wheel_reads_minus_one_until_unstuck():
    with wheel_emulator(slot_time_s=1.0) as emu:
        fw = FilterWheel(emu.address, 0)
        emu.set_state("filterwheel", 0, Stuck=True)
        fw.Position = 1  # would take 1 s simulated
        time.sleep(0.2)  # 20 s simulated
        assert fw.Position == -1
        emu.set_state("filterwheel", 0, Stuck=False)
        wait_for(lambda: fw.Position != -1, what="move after unstick")
        assert fw.Position == 1


def test_mismatched_lengths_are_a_clear_config_error():
    with pytest.raises(ConfigError, match="focus_offsets has 2 entries but names has 3"):
        Emulator({"devices": [{"type": "filterwheel", "names": ["A", "B", "C"], "focus_offsets": [1, 2]}]})
    with pytest.raises(ConfigError, match="initial_position 5"):
        Emulator({"devices": [{"type": "filterwheel", "names": ["A", "B"], "focus_offsets": None, "initial_position": 5}]})
    with pytest.raises(ConfigError, match="names"):
        Emulator({"devices": [{"type": "filterwheel", "names": [], "focus_offsets": []}]})
