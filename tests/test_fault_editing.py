"""Live editing of fault rules over the control API: PATCH a rule, switch named sets together.

Every test drives a real emulator with requests; a rule's effect is checked on real device
calls, its counters and its place in the order on the control API.
"""

from __future__ import annotations

import pytest
import requests

from emulator import Emulator

CONFIG = {"devices": [{"type": "telescope", "connected": True}, {"type": "camera", "connected": True}]}


@pytest.fixture
def emu():
    with Emulator(CONFIG, control_port=0) as e:
        yield e


def _add(emu, rule: dict) -> dict:
    r = requests.post(f"{emu.control_url}/faults", json=rule, timeout=5)
    assert r.status_code == 201, r.text
    return r.json()


def _patch(emu, rule_id: str, body) -> requests.Response:
    return requests.patch(f"{emu.control_url}/faults/{rule_id}", json=body, timeout=5)


def _name(emu, device: str = "telescope") -> int:
    return requests.get(f"{emu.url}/api/v1/{device}/0/name", timeout=5).status_code


def test_patch_changes_parameters_and_keeps_counters_id_and_order(emu):
    first = _add(emu, {"name": "slow", "match": {"member": "name"}, "action": {"kind": "latency", "ms": 0}})
    second = _add(emu, {"match": {"member": "name"}, "action": {"kind": "http_status", "status": 503}, "trigger": {"count": 1}})
    assert [_name(emu) for _ in range(3)] == [503, 200, 200]
    r = _patch(emu, first["id"], {"action": {"ms": 250}})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["action"] == {"kind": "latency", "ms": 250.0, "jitter_ms": 0.0, "direction": "downstream"}
    assert (doc["id"], doc["name"], doc["matched"], doc["fired"], doc["created_s"]) == (
        first["id"], "slow", 3, 3, first["created_s"])
    assert _name(emu) == 200
    entry = emu.traffic.entries(member="name")[-1]
    assert entry.duration_s >= 0.25 and entry.rules == ["slow"]
    # a new count lets the exhausted rule fire again: 1 fired, now 2 allowed
    r = _patch(emu, second["id"], {"trigger": {"count": 2}})
    assert r.json()["fired"] == 1 and r.json()["trigger"]["count"] == 2
    assert [_name(emu) for _ in range(2)] == [503, 200]
    listed = requests.get(f"{emu.control_url}/faults", timeout=5).json()
    assert [x["id"] for x in listed] == [first["id"], second["id"]]
    assert listed[1]["fired"] == 2


def test_patch_enabled_switches_a_rule_off_and_on_with_its_counters(emu):
    rule = _add(emu, {"match": {"member": "name"}, "action": {"kind": "http_status", "status": 500}})
    assert _name(emu) == 500
    off = _patch(emu, rule["id"], {"enabled": False}).json()
    assert off["enabled"] is False and (off["matched"], off["fired"]) == (1, 1)
    assert [_name(emu) for _ in range(3)] == [200, 200, 200]
    assert requests.get(f"{emu.control_url}/faults/{rule['id']}", timeout=5).json()["matched"] == 1  # not counted
    assert emu.traffic.entries(member="name")[-1].rules == []
    on = _patch(emu, rule["id"], {"enabled": True}).json()
    assert on["enabled"] is True
    assert _name(emu) == 500
    assert emu.faults.get(rule["id"]).fired == 2


def test_patch_match_and_kind(emu):
    rule = _add(emu, {"match": {"device_type": "telescope", "member": "name"}, "action": {"kind": "http_status", "status": 500}})
    assert (_name(emu, "telescope"), _name(emu, "camera")) == (500, 200)
    r = _patch(emu, rule["id"], {"match": {"device_type": "camera"}})
    assert r.json()["match"]["member"] == "name" and r.json()["match"]["device_type"] == "camera"
    assert (_name(emu, "telescope"), _name(emu, "camera")) == (200, 500)
    r = _patch(emu, rule["id"], {"match": {"device_type": None}, "action": {"kind": "ascom_error", "number": "0x407"}})
    assert r.status_code == 200, r.text
    assert r.json()["action"] == {"kind": "ascom_error", "number": 0x407, "message": ""}
    for device in ("telescope", "camera"):
        assert requests.get(f"{emu.url}/api/v1/{device}/0/name", timeout=5).json()["ErrorNumber"] == 0x407


@pytest.mark.parametrize(
    "body, field",
    [
        ({"action": {"ms": -5}}, "action.ms"),
        ({"trigger": {"cont": 1}}, "trigger.cont"),
        ({"trigger": {"probability": 2}}, "trigger.probability"),
        ({"enabled": "yes"}, "enabled"),
        ({"match": {"device_type": "toaster"}}, "match.device_type"),
        ({"action": {"kind": "refuse"}}, "action.duration_s"),
        ({"fired": 0}, "fired"),
        ([1, 2], "(patch)"),
    ],
)
def test_a_bad_patch_is_a_400_naming_the_field_and_changes_nothing(emu, body, field):
    rule = _add(emu, {"match": {"member": "name"}, "action": {"kind": "latency", "ms": 10}})
    _name(emu)
    before = requests.get(f"{emu.control_url}/faults/{rule['id']}", timeout=5).json()
    r = _patch(emu, rule["id"], body)
    assert r.status_code == 400, r.text
    fields = [e["field"] for e in r.json()["errors"]]
    assert any(f == field or f.startswith(field) for f in fields), fields
    assert field in r.json()["error"]
    assert requests.get(f"{emu.control_url}/faults/{rule['id']}", timeout=5).json() == before


def test_patch_unknown_rule_and_bad_json(emu):
    assert _patch(emu, "r99", {"enabled": False}).status_code == 404
    rule = _add(emu, {"action": {"kind": "bad_json"}})
    r = requests.patch(f"{emu.control_url}/faults/{rule['id']}", data=b"{nope", timeout=5)
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]


def test_named_sets_switch_on_and_off_together(emu):
    slow = _add(emu, {"set": "bad night", "match": {"device_type": "camera"}, "action": {"kind": "http_status", "status": 502}})
    later = _add(emu, {"set": "bad night", "enabled": False, "match": {"device_type": "telescope"},
                       "action": {"kind": "http_status", "status": 503}})
    other = _add(emu, {"set": "dome", "match": {"device_type": "dome"}, "action": {"kind": "drop"}})
    loose = _add(emu, {"match": {"member": "description"}, "action": {"kind": "bad_json"}})
    sets = requests.get(f"{emu.control_url}/faultsets", timeout=5).json()
    assert sets == [
        {"name": "bad night", "rules": [slow["id"], later["id"]], "enabled": [slow["id"]]},
        {"name": "dome", "rules": [other["id"]], "enabled": [other["id"]]},
    ]
    assert (_name(emu, "camera"), _name(emu, "telescope")) == (502, 200)

    r = requests.put(f"{emu.control_url}/faultsets/bad night", json={"enabled": True}, timeout=5)
    assert r.status_code == 200 and r.json()["enabled"] == [slow["id"], later["id"]]
    assert (_name(emu, "camera"), _name(emu, "telescope")) == (502, 503)

    r = requests.put(f"{emu.control_url}/faultsets/bad%20night", json={"enabled": False}, timeout=5)
    assert r.json() == {"name": "bad night", "rules": [slow["id"], later["id"]], "enabled": []}
    assert (_name(emu, "camera"), _name(emu, "telescope")) == (200, 200)
    assert [emu.faults.get(x["id"]).fired for x in (slow, later)] == [2, 1]  # counters kept
    assert emu.faults.get(loose["id"]).spec.enabled and emu.faults.get(other["id"]).spec.enabled  # untouched
    assert requests.get(f"{emu.control_url}/faultsets/dome", timeout=5).json()["rules"] == [other["id"]]


@pytest.mark.parametrize("body", [{"enabled": "no"}, {}, {"enabled": True, "also": 1}, [True], None])
def test_a_bad_set_switch_is_a_400_naming_enabled(emu, body):
    _add(emu, {"set": "s", "action": {"kind": "bad_json"}})
    r = requests.put(f"{emu.control_url}/faultsets/s", json=body, timeout=5)
    assert r.status_code == 400 and r.json()["field"] == "enabled"
    assert emu.faults.list()[0].spec.enabled


def test_unknown_set(emu):
    assert requests.put(f"{emu.control_url}/faultsets/none", json={"enabled": True}, timeout=5).status_code == 404
    assert requests.get(f"{emu.control_url}/faultsets/none", timeout=5).status_code == 404
    assert requests.get(f"{emu.control_url}/faultsets", timeout=5).json() == []


def test_python_helpers_and_config_sets():
    config = {**CONFIG, "faults": [
        {"set": "night", "enabled": False, "match": {"member": "name"}, "action": {"kind": "http_status", "status": 500}},
    ]}
    with Emulator(config) as emu:
        assert _name(emu) == 200
        (rule,) = emu.faults.enable_set("night")
        assert _name(emu) == 500
        rule.update(action={"status": 501})
        assert _name(emu) == 501
        emu.faults.update(rule.id, {"trigger": {"after": 5}})
        assert _name(emu) == 200  # 3 matches so far, 5 pass
        assert (rule.matched, rule.fired) == (3, 2)
        emu.faults.disable_set("night")
        assert _name(emu) == 200 and rule.matched == 3
        assert list(emu.faults.sets()) == ["night"]
        with pytest.raises(KeyError):
            emu.faults.enable_set("day")


# -- a rule with several actions -----------------------------------------------------------------


def test_patch_of_actions_keeps_counters_id_and_order(emu):
    rule = _add(emu, {"name": "late 503", "match": {"member": "name"},
                      "actions": [{"kind": "latency", "ms": 0}, {"kind": "http_status", "status": 503}]})
    other = _add(emu, {"match": {"member": "name"}, "action": {"kind": "latency", "ms": 0}})
    assert [_name(emu) for _ in range(3)] == [503] * 3
    # by index: only the first action's ms
    r = _patch(emu, rule["id"], {"actions": {"0": {"ms": 200}}})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert [a["kind"] for a in doc["actions"]] == ["latency", "http_status"] and doc["actions"][0]["ms"] == 200
    assert (doc["id"], doc["name"], doc["matched"], doc["fired"], doc["created_s"]) == (rule["id"], "late 503", 3, 3, rule["created_s"])
    assert _name(emu) == 503
    entry = emu.traffic.entries(member="name")[-1]
    assert entry.duration_s >= 0.2 and entry.rules == ["late 503", other["name"] or other["id"]]
    # a list: the new list, each element merged into the action at its index or replacing it
    r = _patch(emu, rule["id"], {"actions": [{"ms": 0}, {"kind": "ascom_error", "number": "0x407"}, "bad_content_type"]})
    assert r.status_code == 200, r.text
    assert [a["kind"] for a in r.json()["actions"]] == ["latency", "ascom_error", "bad_content_type"]
    reply = requests.get(f"{emu.url}/api/v1/telescope/0/name", timeout=5)
    assert reply.headers["Content-Type"].startswith("text/html") and reply.json()["ErrorNumber"] == 0x407
    # an action with a kind replaces the list; actions replace a single action
    r = _patch(emu, rule["id"], {"action": {"kind": "http_status", "status": 500}})
    assert "actions" not in r.json() and r.json()["action"]["status"] == 500 and r.json()["fired"] == 5
    assert _name(emu) == 500
    r = _patch(emu, rule["id"], {"actions": [{}, {"kind": "missing_key", "key": "Value"}]})
    assert r.status_code == 200, r.text
    assert "action" not in r.json() and [a["kind"] for a in r.json()["actions"]] == ["http_status", "missing_key"]
    reply = requests.get(f"{emu.url}/api/v1/telescope/0/name", timeout=5)
    assert reply.status_code == 500
    listed = requests.get(f"{emu.control_url}/faults", timeout=5).json()
    assert [x["id"] for x in listed] == [rule["id"], other["id"]]
    assert (listed[0]["matched"], listed[0]["fired"]) == (7, 7)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"actions": {"0": {"ms": -5}}}, "actions[0].ms"),
        ({"actions": {"2": {"ms": 5}}}, "actions.2"),
        ({"actions": [{}, {"kind": "missing_key", "key": "Value"}, {"kind": "bad_json"}]}, "actions[2].kind"),
        ({"actions": [{}, {}, {}]}, "actions[2].kind"),
        ({"actions": []}, "actions"),
        ({"action": {"ms": 5}}, "action.kind"),
        ({"action": {"kind": "drop"}, "actions": [{"kind": "drop"}]}, "actions"),
        ({"actions": [{"kind": "bad_json"}, {"kind": "drop"}]}, "actions[1].kind"),
    ],
)
def test_a_bad_patch_of_actions_is_a_400_naming_the_field_and_changes_nothing(emu, body, field):
    rule = _add(emu, {"match": {"member": "name"}, "actions": [{"kind": "latency", "ms": 10}, {"kind": "http_status", "status": 503}]})
    assert _name(emu) == 503
    before = requests.get(f"{emu.control_url}/faults/{rule['id']}", timeout=5).json()
    r = _patch(emu, rule["id"], body)
    assert r.status_code == 400, r.text
    assert field in [e["field"] for e in r.json()["errors"]], r.json()
    assert field in r.json()["error"]
    assert requests.get(f"{emu.control_url}/faults/{rule['id']}", timeout=5).json() == before
    assert _name(emu) == 503
