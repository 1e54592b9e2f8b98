"""How several rules on one request compose, and what the traffic log says about it.

The README's composition table, checked on a real emulator: delays add, the first firing
terminal rule wins, and the rules it shadowed are named in the log entry (``shadowed``), over
Python and over the control API. A rule with several ``actions`` composes as those actions in
rules of their own with one trigger decision (and one firing) between them.
"""

from __future__ import annotations

import threading
import time

import pytest
import requests
import urllib3
from alpaca.exceptions import NotConnectedException
from alpaca.safetymonitor import SafetyMonitor

from emulator import Emulator
from emulator.faults import FaultRuleError
from support import wait_until

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


# -- several actions in one rule ---------------------------------------------------------------------


class ControlPoller:
    """A client polling the control port's rule list every 20 ms in a thread, as an operator's
    dashboard does; ``log`` holds (monotonic time, status or the exception's name)."""

    def __init__(self, control_url: str) -> None:
        self.url = f"{control_url}/faults"
        self.log: list[tuple[float, object]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="control-poller", daemon=True)

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.wait(0.02):
                try:
                    status: object = session.get(self.url, timeout=2).status_code
                except requests.exceptions.RequestException as exc:
                    status = type(exc).__name__
                self.log.append((time.monotonic(), status))

    def answered_between(self, t0: float, t1: float) -> list[object]:
        return [status for when, status in list(self.log) if t0 < when < t1]

    def __enter__(self) -> "ControlPoller":
        self._thread.start()
        assert wait_until(lambda: len(self.log) >= 2, timeout=10), "the control poller never got an answer"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        assert not self._thread.is_alive()


def _late_cut_broken(url: str) -> tuple[bytes, float, float, float]:
    """GET ``url`` streaming; what arrived before the close, and when (start, first byte, end)."""
    got = bytearray()
    t0 = time.monotonic()
    first = None
    with pytest.raises(urllib3.exceptions.ProtocolError):  # the close before the whole body
        with requests.get(url, timeout=5, stream=True) as r:
            first = time.monotonic()
            for chunk in r.raw.stream(64, decode_content=False):
                got += chunk
    return bytes(got), t0, first or time.monotonic(), time.monotonic()


LATE_CUT_BROKEN = [{"kind": "latency", "ms": 300}, {"kind": "truncate", "fraction": 0.5}, {"kind": "bad_json"}]
MANAGEMENT = {"device_type": "management"}


def test_one_rule_with_latency_truncate_and_bad_json_is_the_three_rules():
    """The same late, cut, broken answer from three rules and from one rule with three actions,
    while the control port answers a poller throughout; the one rule is named once and fired once."""
    with Emulator(CONFIG, control_port=0) as emu, ControlPoller(emu.control_url) as poller:
        url = f"{emu.url}/management/v1/description"
        plain = requests.get(url, timeout=5).content
        broken = b"<<not JSON>> " + plain[: len(plain) // 2]
        expected = broken[: int(len(broken) * 0.5)]  # bad_json's body, then truncate's half of it

        for action in LATE_CUT_BROKEN:
            emu.faults.add(name=action["kind"], match=MANAGEMENT, action=action)
        three, t0, first, t1 = _late_cut_broken(url)
        assert three == expected
        assert first - t0 >= 0.3
        assert 200 in poller.answered_between(t0, first)  # the control port answered while the rules held the request
        entry = emu.traffic.entries(device_type="management")[-1]
        assert (entry.rules, entry.shadowed, entry.outcome) == (["latency", "truncate", "bad_json"], [], "truncated")
        assert [(r.matched, r.fired) for r in emu.faults.list()] == [(1, 1)] * 3

        emu.faults.clear()
        r = requests.post(f"{emu.control_url}/faults", json={"name": "bad link", "match": MANAGEMENT, "actions": LATE_CUT_BROKEN}, timeout=5)
        assert r.status_code == 201, r.text
        doc = r.json()
        assert "action" not in doc and [a["kind"] for a in doc["actions"]] == ["latency", "truncate", "bad_json"]
        one, t0, first, t1 = _late_cut_broken(url)
        assert one == three
        assert first - t0 >= 0.3
        assert 200 in poller.answered_between(t0, first)
        entry = emu.traffic.entries(device_type="management")[-1]
        assert (entry.rules, entry.shadowed, entry.outcome) == (["bad link"], [], "truncated")
        served = requests.get(f"{emu.control_url}/traffic", params={"rule": "bad link"}, timeout=5).json()
        assert [e["rules"] for e in served] == [["bad link"]]
        rule = requests.get(f"{emu.control_url}/faults/{doc['id']}", timeout=5).json()
        assert (rule["matched"], rule["fired"]) == (1, 1)
        assert all(status == 200 for _, status in poller.log), set(s for _, s in poller.log)


def test_an_alpyca_client_gets_a_late_error_without_its_message():
    """latency + ascom_error + missing_key in one rule, on a real alpyca client: the call waits,
    then fails with the injected number (alpyca reports the envelope without ErrorMessage)."""
    with Emulator(CONFIG) as emu:
        mon = SafetyMonitor(emu.address, 0)
        emu.faults.add(name="late error", match={"member": "issafe"}, actions=[
            {"kind": "latency", "ms": 150}, {"kind": "ascom_error", "number": 0x407}, {"kind": "missing_key", "key": "ErrorMessage"}])
        doc = _get(emu).json()
        assert doc["ErrorNumber"] == 0x407 and "ErrorMessage" not in doc
        entry = emu.traffic.entries(member="issafe")[-1]
        assert entry.duration_s >= 0.15 and entry.rules == ["late error"] and entry.error_number == 0x407
        emu.faults.clear()
        emu.faults.add(name="late error", match={"member": "issafe"}, actions=[{"kind": "latency", "ms": 150}, {"kind": "ascom_error", "number": 0x407}])
        t0 = time.monotonic()
        with pytest.raises(NotConnectedException):
            mon.IsSafe
        assert time.monotonic() - t0 >= 0.15
        emu.faults.clear()
        assert mon.IsSafe is True


def test_one_trigger_decision_and_one_fired_count_for_the_rule():
    with Emulator(CONFIG) as emu:
        rule = emu.faults.add(name="pair", match={"member": "issafe"}, trigger={"every": 2},
                              actions=[{"kind": "latency", "ms": 1}, {"kind": "http_status", "status": 503}])
        assert [_get(emu).status_code for _ in range(4)] == [200, 503, 200, 503]
        assert (rule.matched, rule.fired) == (4, 2)
        assert [e.rules for e in emu.traffic.entries(member="issafe")] == [[], ["pair"], [], ["pair"]]
        assert "latency+http_status" in repr(rule)


def test_a_rules_actions_are_shadowed_one_by_one_as_rules_would_be():
    """An earlier rule took the request stage: the later rule's latency still acts (it is fired and
    named under rules), its ascom_error is shadowed (named under shadowed); a rule none of whose
    actions could act is only shadowed, not fired."""
    with Emulator(CONFIG) as emu:
        emu.faults.add(name="503", match={"member": "issafe"}, action={"kind": "http_status", "status": 503})
        late = emu.faults.add(name="late error", match={"member": "issafe"},
                              actions=[{"kind": "latency", "ms": 150}, {"kind": "ascom_error", "number": 0x407}])
        idle = emu.faults.add(name="other 500", match={"member": "issafe"}, actions=[{"kind": "http_status", "status": 500}])
        r = _get(emu)
        assert r.status_code == 503
        entry = emu.traffic.entries(member="issafe")[-1]
        assert entry.duration_s >= 0.15
        assert (entry.rules, entry.shadowed) == (["503", "late error"], ["late error", "other 500"])
        assert [(x.matched, x.fired) for x in (late, idle)] == [(1, 1), (1, 0)]


def test_an_outage_with_latency_in_one_rule_is_one_window():
    """latency + refuse: the client waits, the port refuses for the window, the rule fires once
    (an outage does not repeat unless told), and the control port answers throughout."""
    with Emulator(CONFIG, control_port=0) as emu, ControlPoller(emu.control_url) as poller:
        rule = emu.faults.add(name="slow outage", match={"member": "issafe"},
                              actions=[{"kind": "latency", "ms": 50}, {"kind": "refuse", "duration_s": 0.6}])
        t0 = time.monotonic()
        with pytest.raises(requests.exceptions.ConnectionError):
            _get(emu)
        assert wait_until(lambda: _answers(emu), timeout=10), "the port never came back"
        t1 = time.monotonic()
        assert [_get(emu).status_code for _ in range(3)] == [200] * 3
        assert (rule.fired, emu.traffic.entries(member="issafe")[0].outcome) == (1, "refused")
        assert 200 in poller.answered_between(t0 + 0.1, t1)
        assert all(status == 200 for _, status in poller.log)


def _answers(emu) -> bool:
    try:
        return _get(emu).status_code == 200
    except requests.exceptions.ConnectionError:
        return False


@pytest.mark.parametrize(
    "rule, field",
    [
        ({"action": {"kind": "bad_json"}, "actions": [{"kind": "bad_json"}]}, "actions"),
        ({"actions": []}, "actions"),
        ({"actions": "bad_json"}, "actions"),
        ({"actions": [{"kind": "bad_json"}, {"kind": "missing_key", "key": "Value"}]}, "actions[1].kind"),
        ({"actions": [{"kind": "truncate"}, {"kind": "slow_body", "bytes_per_s": 10}]}, "actions[1].kind"),
        ({"actions": [{"kind": "latency", "ms": 5}, {"kind": "bad_json"}, {"kind": "drop"}]}, "actions[2].kind"),
        ({"actions": [{"kind": "reset"}, {"kind": "http_status", "status": 500}]}, "actions[1].kind"),
        ({"actions": [{"kind": "latency", "ms": 5}, {"kind": "discovery_silent"}]}, "actions[1].kind"),
        ({"actions": [{"kind": "latency", "ms": -1}]}, "actions[0].ms"),
        ({"actions": [{"kind": "latency", "ms": 5}, {"kind": "explode"}]}, "actions[1].kind"),
        ({"match": {"device_type": "camera"}}, "action"),
    ],
)
def test_a_bad_list_of_actions_is_a_400_naming_the_field(rule, field):
    with Emulator(CONFIG, control_port=0) as emu:
        emu.faults.add(name="kept", action={"kind": "latency", "ms": 1})
        r = requests.post(f"{emu.control_url}/faults", json=rule, timeout=5)
        assert r.status_code == 400, r.text
        assert field in [e["field"] for e in r.json()["errors"]], r.json()
        assert field in r.json()["error"]
        assert [x["name"] for x in requests.get(f"{emu.control_url}/faults", timeout=5).json()] == ["kept"]
        with pytest.raises(FaultRuleError) as info:
            emu.faults.add(rule)
        assert field in [f for f, _ in info.value.errors]


def test_two_latencies_add_and_two_bandwidths_take_the_lowest_as_across_rules():
    """Non-terminal kinds may repeat in one rule: upstream and downstream delays add up."""
    with Emulator(CONFIG) as emu:
        emu.faults.add(match={"member": "issafe"}, actions=[
            {"kind": "latency", "ms": 100, "direction": "upstream"}, {"kind": "latency", "ms": 100},
            {"kind": "bandwidth", "bytes_per_s": 1e6}, {"kind": "bandwidth", "bytes_per_s": 2000}])
        t0 = time.monotonic()
        r = _get(emu)
        took = time.monotonic() - t0
        assert r.status_code == 200 and r.json()["Value"] is True
        assert took >= 0.2 + len(r.content) / 2000


def test_rules_with_actions_from_a_toml_config(tmp_path):
    from emulator.config import ConfigError

    cfg = tmp_path / "rules.toml"
    cfg.write_text(
        '[[devices]]\ntype = "safetymonitor"\nconnected = true\n'
        '[[faults]]\nname = "late 503"\nmatch = { member = "issafe" }\n'
        'actions = [ { kind = "latency", ms = 50 }, { kind = "http_status", status = 503 }, "bad_content_type" ]\n'
    )
    with Emulator(cfg) as emu:
        r = _get(emu)
        assert r.status_code == 503 and r.headers["Content-Type"].startswith("text/html")
        assert emu.traffic.entries(member="issafe")[-1].rules == ["late 503"]
    cfg.write_text('[[faults]]\nactions = [ { kind = "bad_json" }, { kind = "wrong_type" } ]\n')
    with pytest.raises(ConfigError, match=r"faults\[0\]\.actions\[1\]\.kind"):
        Emulator(cfg)


def test_the_readme_rule_with_several_actions_is_accepted_as_written():
    """The README's one-rule example, taken from the README itself, posts as one rule of four actions."""
    import json
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    body = re.search(r"-d '(\{\n  \"name\": \"bad link\".*?\n\})'", readme, re.S).group(1)
    with Emulator({"devices": [{"type": "telescope", "connected": True}]}, control_port=0) as emu:
        r = requests.post(f"{emu.control_url}/faults", data=body, headers={"Content-Type": "application/json"}, timeout=5)
        assert r.status_code == 201, r.text
        assert [a["kind"] for a in r.json()["actions"]] == ["latency", "bandwidth", "bad_json", "truncate"]
        assert r.json()["trigger"]["every"] == 3 and json.loads(body)["name"] == "bad link"
        assert requests.get(f"{emu.url}/api/v1/telescope/0/targetrightascension", timeout=5).status_code in (200, 400)
        assert emu.faults.list()[0].matched == 1 and emu.faults.list()[0].fired == 0  # every 3rd: not this one
