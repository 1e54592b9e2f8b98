"""How several rules on one request compose, and what the traffic log says about it.

The README's composition table, checked on a real emulator: delays add, the first firing
terminal rule wins, and the rules it shadowed are named in the log entry (``shadowed``), over
Python and over the control API.
"""

from __future__ import annotations

import time

import pytest
import requests
import urllib3

from emulator import Emulator

CONFIG = {"devices": [{"type": "safetymonitor", "connected": True}]}


def _get(emu, member: str = "issafe") -> requests.Response:
    return requests.get(f"{emu.url}/api/v1/safetymonitor/0/{member}", timeout=5)


def test_shadowed_rules_are_named_in_the_traffic_log():
    with Emulator(CONFIG, control_port=0) as emu:
        emu.faults.add(name="slow", action={"kind": "latency", "ms": 20})
        emu.faults.add(name="err", match={"member": "issafe"}, action={"kind": "ascom_error", "number": 0x407})
        emu.faults.add(name="late 500", match={"device_type": "safetymonitor"}, action={"kind": "http_status", "status": 500})
        emu.faults.add(name="not yet", action={"kind": "drop"}, trigger={"after": 5})  # matches, does not fire
        emu.faults.add(name="other member", match={"member": "name"}, action={"kind": "bad_json"})
        assert _get(emu).json()["ErrorNumber"] == 0x407
        (entry,) = emu.traffic.entries(member="issafe")
        assert entry.rules == ["slow", "err"]
        assert entry.shadowed == ["late 500"]
        served = requests.get(f"{emu.control_url}/traffic", params={"member": "issafe"}, timeout=5).json()
        assert [(e["rules"], e["shadowed"]) for e in served] == [(["slow", "err"], ["late 500"])]
        shadowed = emu.faults.list()[2]
        assert (shadowed.matched, shadowed.fired) == (1, 0)

        # with the winner switched off, the shadowed rule acts and nothing is shadowed
        emu.faults.update(emu.faults.list()[1].id, {"enabled": False})
        assert _get(emu).status_code == 500
        entry = emu.traffic.entries(member="issafe")[-1]
        assert (entry.rules, entry.shadowed) == (["slow", "late 500"], [])


def test_no_shadow_when_one_rule_acts():
    with Emulator(CONFIG) as emu:
        emu.faults.add(name="only", match={"member": "issafe"}, action={"kind": "http_status", "status": 503})
        assert _get(emu).status_code == 503
        assert _get(emu, "name").status_code == 200
        first, second = emu.traffic.entries()
        assert (first.rules, first.shadowed, second.rules, second.shadowed) == (["only"], [], [], [])
        assert first.as_dict()["shadowed"] == []


def test_latency_bandwidth_truncate_and_bad_json_compose():
    """The README's example: the client waits, then gets half of a broken reply slowly, then the
    close; a drop added after them finds the request taken and is shadowed."""
    with Emulator(CONFIG) as emu:
        url = f"{emu.url}/management/v1/description"
        size = len(requests.get(url, timeout=5).content)
        emu.faults.add(name="wait", match={"device_type": "management"}, action={"kind": "latency", "ms": 200})
        emu.faults.add(name="link", match={"device_type": "management"}, action={"kind": "bandwidth", "bytes_per_s": 1000})
        emu.faults.add(name="cut", match={"device_type": "management"}, action={"kind": "truncate", "fraction": 0.5})
        emu.faults.add(name="broken", match={"device_type": "management"}, action={"kind": "bad_json"})
        emu.faults.add(name="drop", match={"device_type": "management"}, action={"kind": "drop"})
        t0 = time.monotonic()
        got = bytearray()
        with pytest.raises(urllib3.exceptions.ProtocolError):  # the close before the whole body
            with requests.get(url, timeout=5, stream=True) as r:
                for chunk in r.raw.stream(64, decode_content=False):
                    got += chunk
        assert time.monotonic() - t0 >= 0.2 + len(got) / 1000
        assert bytes(got).startswith(b"<<not JSON>> ")  # bad_json's body, then cut
        (entry,) = emu.traffic.entries(device_type="management")[1:]
        assert (entry.rules, entry.shadowed, entry.outcome) == (["wait", "link", "cut", "broken"], ["drop"], "truncated")
        assert size > 0


def test_terminal_rules_compose_by_stage_and_the_first_takes_a_stage():
    with Emulator(CONFIG) as emu:
        emu.faults.add(name="err", match={"member": "issafe"}, action={"kind": "ascom_error", "number": 0x407})
        emu.faults.add(name="no message", match={"member": "issafe"}, action={"kind": "missing_key", "key": "ErrorMessage"})
        emu.faults.add(name="no value", match={"member": "issafe"}, action={"kind": "missing_key", "key": "Value"})
        doc = _get(emu).json()
        assert doc["ErrorNumber"] == 0x407 and "ErrorMessage" not in doc  # request stage, then response content
        entry = emu.traffic.entries(member="issafe")[-1]
        assert (entry.rules, entry.shadowed) == (["err", "no message"], ["no value"])
        assert entry.error_number == 0x407

        # a connection-stage rule acts alone: first in the order, it shadows every other terminal rule
        emu.faults.clear()
        emu.faults.add(name="reset", match={"member": "name"}, action={"kind": "reset"})
        emu.faults.add(name="broken", match={"member": "name"}, action={"kind": "bad_json"})
        with pytest.raises(requests.exceptions.ConnectionError):
            _get(emu, "name")
        entry = emu.traffic.entries(member="name")[-1]
        assert (entry.rules, entry.shadowed, entry.outcome) == (["reset"], ["broken"], "reset")
