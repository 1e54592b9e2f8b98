"""The server's cheap paths behave exactly like the plain ones they replace.

Rules are looked up through a per-(verb, path) candidate cache, and traffic entries derive their
fields on first read; these tests pin that a cached path still sees rules added or removed later,
in creation order, that a lazily derived entry reads the same as an eagerly filled one, and that
the app's parameter fast paths agree with the general parsers.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl

import pytest
import requests
from alpaca.exceptions import NotConnectedException
from alpaca.safetymonitor import SafetyMonitor
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator import Emulator
from emulator.http.protocol import BadRequest
from emulator.faults import FaultSet, RequestInfo, request_info
from emulator.http.protocol import parse_form, parse_uint32
from emulator.serve.traffic import TrafficEntry

CONFIG = {"devices": [{"type": "safetymonitor"}, {"type": "focuser"}]}


class _Clock:
    def now(self) -> float:
        return 0.0


@pytest.fixture
def emu():
    with Emulator(CONFIG) as e:
        yield e


def test_cached_path_sees_rules_added_and_removed_later(emu):
    mon = SafetyMonitor(emu.address, 0)
    mon.Connected = True
    noise = [emu.faults.add(match={"device_type": "focuser", "device_number": 100 + i}, action="bad_json") for i in range(20)]
    assert mon.IsSafe is True  # the path is now cached with no candidate
    with emu.faults.add(name="late", match={"member": "issafe"}, action={"kind": "ascom_error", "number": 0x407}):
        with pytest.raises(NotConnectedException):
            mon.IsSafe
    assert mon.IsSafe is True  # removed: the cache forgot it
    emu.faults.clear()
    assert mon.IsSafe is True
    assert all(r.matched == 0 for r in noise)
    assert [e.rules for e in emu.traffic.entries(member="issafe")] == [[], ["late"], [], []]


def test_cache_keeps_creation_order_and_counts_shadowed_rules():
    faults = FaultSet(_Clock())
    first = faults.add(name="a", match={"member": "issafe"}, action={"kind": "missing_key"})  # b's stage: b is shadowed
    slow = faults.add(name="slow", action={"kind": "latency", "ms": 10})
    second = faults.add(name="b", match={"device_type": "safetymonitor"}, action="bad_json")
    other = faults.add(name="c", match={"member": "name"}, action="bad_json")
    for _ in range(3):  # the second and third evaluations come from the cache
        plan = faults.evaluate_request("GET", "/api/v1/safetymonitor/0/issafe")
        assert plan is not None and plan.action.kind == "missing_key" and plan.fired == ["a", "slow"]
        assert plan.reply_delay_s == pytest.approx(0.010)  # latency is downstream by default
    assert (first.fired, slow.fired, second.fired, second.matched, other.matched) == (3, 3, 0, 3, 0)
    # evaluate(info) and evaluate_request(verb, path) agree and share the counters
    plan = faults.evaluate(request_info("GET", "/api/v1/safetymonitor/0/issafe"))
    assert plan.fired == ["a", "slow"] and first.fired == 4
    # a RequestInfo that no path produces is matched on its own fields
    plan = faults.evaluate(RequestInfo("GET", "", "safetymonitor", 0, "name"))
    assert plan.fired == ["slow", "b"] and plan.action.kind == "bad_json"
    assert (first.matched, other.matched, other.fired) == (4, 1, 0)  # c is shadowed by the earlier b


def test_cache_is_bounded():
    faults = FaultSet(_Clock())
    faults.add(match={"member": "position"}, action="bad_json")
    for i in range(FaultSet._CACHE_MAX + 10):
        assert faults.evaluate_request("GET", f"/api/v1/focuser/{i}/name") is None
    assert len(faults._candidates) <= FaultSet._CACHE_MAX
    assert faults.evaluate_request("GET", "/api/v1/focuser/3/position") is not None


def test_lazy_entry_reads_like_an_eager_one(emu):
    mon = SafetyMonitor(emu.address, 0)
    mon.Connected = True
    requests.put(emu.url + "/api/v1/focuser/0/connected", data={"Connected": "true", "ClientTransactionID": "9", "x": ""}, timeout=5)
    requests.get(emu.url + "/api/v1/Focuser/x/Position?a=%41&b=&a=2", timeout=5)
    requests.get(emu.url + "/management/v1/configureddevices", timeout=5)
    put, put2, get, mgmt = emu.traffic.entries()
    assert (put.verb, put.device_type, put.device_number, put.member) == ("PUT", "safetymonitor", 0, "connected")
    assert put2.params == {"Connected": "true", "ClientTransactionID": "9", "x": ""}
    assert (get.device_type, get.device_number, get.member, get.params) == ("focuser", None, "position", {"a": "2", "b": ""})
    assert (mgmt.device_type, mgmt.member, mgmt.params) == ("management", "configureddevices", {})
    assert put.client.startswith("127.0.0.1:") and put.client.split(":")[1].isdigit()
    eager = TrafficEntry(get.time, get.sim_time, get.client, "GET", get.path, "focuser", None, "position", {"a": "2", "b": ""},
                         status=get.status, error_number=get.error_number, rules=[], duration_s=get.duration_s)
    assert get == eager and get.as_dict() == eager.as_dict()
    assert list(get.as_dict()) == list(TrafficEntry.FIELDS)
    # the control API serves the same fields
    served = requests.get(emu.url + "/emulator/v1/traffic", params={"member": "position"}, timeout=5).json()
    assert served == [json.loads(json.dumps(get.as_dict()))]


def test_lazy_fields_can_be_overwritten():
    e = TrafficEntry(1.0, 2.0, ("10.0.0.1", 5), "GET", "/api/v1/camera/1/gain", params="Gain=3")
    e.member = "other"
    e.rules.append("x")
    assert (e.client, e.device_type, e.device_number, e.member, e.params, e.rules) == (
        "10.0.0.1:5", "camera", 1, "other", {"Gain": "3"}, ["x"])


# -- the app's parameter fast paths ---------------------------------------------------------------

_FORM_TEXT = st.text(alphabet="ab=&%+20é;\x00 ", max_size=30)


@settings(max_examples=400, deadline=None)
@given(_FORM_TEXT)
def test_parse_form_gives_what_parse_qsl_gives(raw):
    try:
        expected = parse_qsl(raw, keep_blank_values=True, strict_parsing=False, errors="strict")
    except (ValueError, UnicodeDecodeError):
        with pytest.raises(BadRequest):
            parse_form(raw)
        return
    assert parse_form(raw) == expected


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="0129+- \t\u0663\u00b2x", max_size=12) | st.integers(-10, 2**33).map(str))
def test_parse_uint32_fast_path_agrees_with_the_rule(raw):
    text = raw.strip()
    valid = re.fullmatch(r"[+-]?\d+", text) is not None and 0 <= int(raw) <= 4294967295
    assert parse_uint32(raw) == (int(raw) if valid else 0)


def test_answer_is_parsed_on_first_read():
    e = TrafficEntry(1.0, 2.0, "c:1", "GET", "/api/v1/camera/0/gain")
    assert e.answered("200 OK", b'{"Value":1,"ClientTransactionID":0,"ServerTransactionID":1,"ErrorNumber":1031,"ErrorMessage":"x"}')
    assert (e.status, e.error_number) == (200, 1031)
    big = b'{"Value":"' + b"x" * 5000 + b'","ErrorNumber":0,"ErrorMessage":""}'
    assert not e.answered("200 OK", big)  # too big to keep: the caller reads it now
    assert e.answered("400 Bad Request", b"") and e.status == 400
    bad = TrafficEntry(1.0, 2.0, "c:1", "GET", "/x")
    bad.answered("2xx nonsense", b"{}")
    assert (bad.status, bad.error_number) == (None, None)
    bad.error_number = 5
    assert bad.as_dict()["error_number"] == 5
