"""It catches what it claims: for every check family, the emulator serves one deliberately
non-conforming answer (its own fault rules) and the checker must report that exact member as
failed. A checker that passes a broken server is the defect to fear."""

from __future__ import annotations

import pytest

from conform import Options, Outcome, run
from emulator import Emulator


@pytest.fixture(scope="module")
def emu():
    with Emulator(time_scale=100) as e:
        yield e


@pytest.fixture(autouse=True)
def clean(emu):
    emu.reset()
    yield
    emu.reset()


def failed(report) -> set[tuple[str, str | None, str | None]]:
    return {(r.check.family, r.check.device, r.check.member) for r in report.results if r.outcome is Outcome.FAILED}


def check(emu, families, devices, **options):
    return run(emu.url, Options(operation_timeout_s=20, **options), devices, families)


def test_every_family_passes_without_faults(emu):
    report = check(emu, None, [("focuser", 0), ("switch", 0)])
    families = {r.check.family for r in report.results}
    assert families == {"management", "path", "verb", "envelope", "schema", "transaction", "casing", "ids", "params", "behaviour"}
    raw_bug = {"commandblind", "commandbool", "commandstring"}  # see test_conform_emulator.KNOWN_EMULATOR_BUG
    assert {f for f in failed(report) if f[2] not in raw_bug} == set()


def test_unreadable_interface_version(emu):
    emu.faults.add({"match": {"device_type": "focuser", "member": "interfaceversion"}, "action": {"kind": "ascom_error", "number": 0x500}})
    report = check(emu, ("schema", "behaviour"), [("focuser", 0)])
    assert report.devices == [{"device": "focuser:0", "interface_version": 4}]  # the latest is expected
    assert ("schema", "focuser:0", "interfaceversion") in failed(report)
    known = next(r for r in report.results if r.check.name == "interface version known")
    assert known.outcome is Outcome.WARNING and "InterfaceVersion unreadable" in known.message


def test_management_missing_value(emu):
    emu.faults.add({"match": {"device_type": "management", "member": "configureddevices"}, "action": {"kind": "missing_key", "key": "Value"}})
    assert ("management", None, "configureddevices") in failed(check(emu, ("management",), [("focuser", 0)]))


def test_path_answered_500(emu):
    emu.faults.add({"match": {"path": "/api/v1/baddevicetype/*"}, "action": {"kind": "http_status", "status": 500}})
    report = check(emu, ("path",), [("focuser", 0)])
    bad = [r for r in report.results if r.outcome is Outcome.FAILED]
    assert [(r.check.member, r.check.name) for r in bad] == [("description", "unknown device type")]
    assert "HTTP 500" in bad[0].got and "/api/v1/baddevicetype/0/description" in bad[0].sent


def test_path_404_passes_lenient_but_not_strict(emu):
    emu.faults.add({"match": {"path": "/api/v1/baddevicetype/*"}, "action": {"kind": "http_status", "status": 404, "body": "nope"}})
    assert ("path", "focuser:0", "description") not in failed(check(emu, ("path",), [("focuser", 0)]))
    assert ("path", "focuser:0", "description") in failed(check(emu, ("path",), [("focuser", 0)], strict=True))


def test_verb_post_accepted(emu):
    emu.faults.add({"match": {"device_type": "focuser", "member": "connected", "verb": "POST"}, "action": {"kind": "http_status", "status": 200, "body": "{}"}})
    report = check(emu, ("verb",), [("focuser", 0)])
    assert [(r.check.member, r.check.name) for r in report.results if r.outcome is Outcome.FAILED] == [("connected", "POST")]


@pytest.mark.parametrize(
    "action, family",
    [
        ({"kind": "missing_key", "key": "ErrorMessage"}, "envelope"),
        ({"kind": "bad_json"}, "envelope"),
        ({"kind": "bad_content_type"}, "envelope"),
        ({"kind": "wrong_type"}, "schema"),
        ({"kind": "ascom_error", "number": 0x500, "message": "gremlins"}, "schema"),
        ({"kind": "wrong_transaction_id"}, "transaction"),
    ],
    ids=lambda v: v["kind"] if isinstance(v, dict) else v,
)
def test_one_good_get_broken(emu, action, family):
    emu.faults.add({"match": {"device_type": "focuser", "member": "maxstep", "verb": "GET"}, "action": action})
    report = check(emu, ("envelope", "schema", "transaction"), [("focuser", 0)])
    bad = failed(report)
    assert (family, "focuser:0", "maxstep") in bad
    assert {member for _, _, member in bad} == {"maxstep"}, bad


def test_casing_variant_refused(emu):
    # the first request of the casing check (an extra parameter) is refused with 400
    emu.faults.add({"match": {"device_type": "focuser", "member": "maxincrement"}, "action": {"kind": "http_status", "status": 400}, "trigger": {"count": 1}})
    assert failed(check(emu, ("casing",), [("focuser", 0)])) == {("casing", "focuser:0", "maxincrement")}


def test_bad_ids_answered_500(emu):
    emu.faults.add({"match": {"device_type": "focuser", "member": "maxincrement"}, "action": {"kind": "http_status", "status": 500}})
    assert failed(check(emu, ("ids",), [("focuser", 0)])) == {("ids", "focuser:0", "maxincrement")}


def test_missing_parameter_accepted(emu):
    emu.faults.add({"match": {"device_type": "switch", "member": "getswitchname"}, "action": {"kind": "http_status", "status": 200, "body": "ok"}})
    report = check(emu, ("params",), [("switch", 0)])
    names = {r.check.name for r in report.results if r.outcome is Outcome.FAILED and r.check.member == "getswitchname"}
    assert "missing parameter" in names


BEHAVIOUR_TARGETS = {
    "camera": "cameraxsize",
    "covercalibrator": "coverstate",
    "dome": "slewing",
    "filterwheel": "names",
    "focuser": "maxstep",
    "observingconditions": "temperature",
    "rotator": "position",
    "safetymonitor": "issafe",
    "switch": "maxswitch",
    "telescope": "rightascension",
}


@pytest.mark.parametrize("device_type", sorted(BEHAVIOUR_TARGETS))
def test_behaviour_ascom_error_where_a_value_is_due(emu, device_type):
    member = BEHAVIOUR_TARGETS[device_type]
    emu.faults.add({"match": {"device_type": device_type, "member": member, "verb": "GET"}, "action": {"kind": "ascom_error", "number": 0x500, "message": "gremlins"}})
    report = check(emu, ("behaviour",), [(device_type, 0)])
    bad = [r for r in report.results if r.outcome is Outcome.FAILED and r.check.member == member]
    assert bad, f"no behaviour check of {device_type} failed on {member}"
    assert any("gremlins" in (r.got or "") + r.message for r in bad)


@pytest.mark.timeout(60)
def test_a_slew_that_never_ends_fails_at_its_deadline(emu):
    emu.set_state("telescope", Stuck=True)
    report = run(emu.url, Options(operation_timeout_s=1.5), [("telescope", 0)], ("behaviour",))
    slew = next(r for r in report.results if r.check.name == "slew completes")
    assert slew.outcome is Outcome.FAILED and "timed out after 1.5 s" in slew.message
    assert slew.duration_s < 15


MOVING_PUTS = {
    "startexposure", "pulseguide", "abortexposure", "stopexposure", "opencover", "closecover", "haltcover",
    "calibratoron", "calibratoroff", "openshutter", "closeshutter", "findhome", "park", "unpark", "setpark",
    "slewtoaltitude", "slewtoazimuth", "synctoazimuth", "slaved", "move", "moveabsolute", "movemechanical",
    "halt", "sync", "setswitch", "setswitchvalue", "setasync", "setasyncvalue", "setswitchname", "moveaxis",
    "slewtoaltaz", "slewtoaltazasync", "slewtocoordinates", "slewtocoordinatesasync", "slewtotarget",
    "slewtotargetasync", "synctoaltaz", "synctocoordinates", "synctotarget", "sideofpier", "tracking",
    "abortslew", "tempcomp", "commandblind", "commandbool", "commandstring", "action",
}


@pytest.mark.timeout(180)
def test_no_motion_sends_nothing_that_moves(emu):
    emu.traffic.clear()
    report = run(emu.url, Options(no_motion=True))
    # The one Action sent names no action (it must be refused as ActionNotImplemented).
    sent = {(e.device_type, e.member) for e in emu.traffic.entries(verb="PUT") if e.params.get("Action") != "conform-no-such-action"}
    moved = sorted((t, m) for t, m in sent if m in MOVING_PUTS or (t == "filterwheel" and m == "position"))
    assert not moved, f"--no-motion sent {moved}"
    assert report.count(Outcome.SKIPPED) >= 30
