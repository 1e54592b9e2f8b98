"""Interface versions: every type at every version it had serves exactly that version's members.

One emulator serves every (type, version) pair at once, device number ``version - 1``; each pair's
test walks every member the OpenAPI file has for the type, by raw HTTP: what the version has
answers (and its JSON fits the spec's schema), what came later is an unknown member (HTTP 400,
plain text, naming the interface that introduced it). The table itself is checked against the
OpenAPI file's version markings.
"""

from __future__ import annotations

import re

import pytest
import requests
from alpaca.exceptions import AlpacaRequestException, InvalidOperationException
from alpaca.filterwheel import FilterWheel
from alpaca.focuser import Focuser

from emulator import Emulator
from emulator.config import ConfigError, config_from_dict
from emulator.sim import interfaces
from emulator.sim.devices import DEVICE_CLASSES
from test_openapi import (
    DEVICE_SPEC,
    _parse,
    error_schema,
    load_spec,
    required_form,
    required_query,
    response_schema,
    spec_operations,
    validate,
)

TIMEOUT = 15
PAIRS = [(t, v) for t in sorted(DEVICE_CLASSES) for v in interfaces.versions(t)]
#: Served beyond the OpenAPI file (written for Platform 7) at some older versions, for a reason.
BEYOND_SPEC = {("focuser", "link")}  # IFocuserV1's connection member; focuser versions 1-3 (OmniSim serves it)


@pytest.fixture(scope="module")
def device_spec() -> dict:
    return load_spec(DEVICE_SPEC)


@pytest.fixture(scope="module")
def every_version():
    """Every type at every version it had, connected: device number = version - 1."""
    devices = []
    for device_type, version in PAIRS:
        dev = {"type": device_type, "number": version - 1, "interface_version": version, "connected": True}
        if device_type == "camera":
            dev.update(width=32, height=24)
        devices.append(dev)
    with Emulator({"devices": devices}, time_scale=100) as emu:
        yield emu


# -- the table -----------------------------------------------------------------------------------


def test_latest_versions_are_the_models():
    for device_type, cls in DEVICE_CLASSES.items():
        assert interfaces.LATEST[device_type] == cls.interface_version, device_type
        assert interfaces.interface_name(device_type, 1) == f"I{cls.type_name}V1"


def test_every_served_member_has_a_version():
    for device_type, cls in DEVICE_CLASSES.items():
        missing = sorted(m for m in cls.member_verbs if m not in interfaces.INTRODUCED[device_type])
        assert missing == [], f"{device_type}: members with no interface version: {missing}"
        unserved = sorted(m for m in interfaces.INTRODUCED[device_type] if m not in cls.member_verbs)
        assert unserved == [], f"{device_type}: table members the model does not serve: {unserved}"


def test_latest_version_is_what_the_spec_lists(device_spec):
    spec = {(t, m) for t, _, m, _ in spec_operations(device_spec)}
    latest = {(t, m) for t in DEVICE_CLASSES for m in interfaces.members_at(t, interfaces.LATEST[t])}
    assert sorted(latest - spec - {("switch", "cancelasync")}) == []  # CancelAsync: ISwitchV3, absent from the file
    assert sorted(spec - latest) == []


_MARK = re.compile(r"`(?:I(\w+?)V(\d+) and later|Platform 7 onward\.?)`")


def test_version_markings_of_the_spec_agree(device_spec):
    """The OpenAPI file marks some members "ICameraV3 and later" or "Platform 7 onward"."""
    checked = 0
    for path, item in device_spec["paths"].items():
        _, device_type, _, member = path.split("/")
        types = sorted(DEVICE_CLASSES) if device_type == "{device_type}" else [device_type]
        for operation in (op for verb, op in item.items() if verb in ("get", "put")):
            text = f"{operation.get('summary', '')} {operation.get('description', '')}"
            for m in _MARK.finditer(text):
                for t in types:
                    expected = interfaces.PLATFORM7[t] if m.group(2) is None else int(m.group(2))
                    if m.group(1) is not None:
                        assert m.group(1).lower() == t, (path, m.group(0))
                    assert interfaces.INTRODUCED[t][member] == expected, (t, member, m.group(0))
                    checked += 1
    assert checked >= 40  # 4 Platform 7 members x 10 types, plus the per-type markings


# -- every type at every version, by raw HTTP --------------------------------------------------------


def _ids() -> list[str]:
    return [f"{t}-v{v}" for t, v in PAIRS]


@pytest.mark.parametrize("device_type, version", PAIRS, ids=_ids())
def test_version_serves_exactly_its_members(device_spec, every_version, device_type, version):
    base = f"{every_version.url}/api/v1/{device_type}/{version - 1}"
    present = interfaces.members_at(device_type, version)
    problems = []
    with requests.Session() as s:
        for t, verb, member, operation in spec_operations(device_spec):
            if t != device_type or (verb == "PUT" and member in ("connect", "disconnect", "connected")):
                continue  # keep every device connected for the GETs
            if verb == "GET":
                resp = s.get(f"{base}/{member}", params={"ClientTransactionID": "3", **required_query(device_spec, operation)}, timeout=TIMEOUT)
            else:
                resp = s.put(f"{base}/{member}", data={}, timeout=TIMEOUT)
            if member not in present:
                if resp.status_code != 400 or not resp.headers["Content-Type"].startswith("text/plain") or "introduced in" not in resp.text:
                    problems.append(f"{verb} {member}: expected an unknown member (400), got {resp.status_code} {resp.text[:100]}")
                continue
            if verb == "PUT":
                needed = required_form(device_spec, operation)
                if not (resp.status_code == 200 or (resp.status_code == 400 and needed)):
                    problems.append(f"PUT {member}: {resp.status_code} {resp.text[:100]}")
                continue
            if resp.status_code != 200:
                problems.append(f"GET {member}: {resp.status_code} {resp.text[:100]}")
                continue
            body = resp.json()
            try:
                validate(response_schema(device_spec, operation) if body["ErrorNumber"] == 0 else error_schema(device_spec), body)
            except AssertionError as exc:
                problems.append(f"GET {member}: {exc}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("device_type, version", PAIRS, ids=_ids())
def test_version_routes_nothing_the_spec_lacks(device_type, version):
    if not DEVICE_SPEC.exists():
        pytest.skip(f"official Alpaca OpenAPI file not found at {DEVICE_SPEC}")
    spec = {m for t, _, m, _ in spec_operations(_parse(DEVICE_SPEC)) if t == device_type}
    routes, _ = interfaces.routes_for(DEVICE_CLASSES[device_type], version)
    extra = {m for _, m in routes} - spec - {m for t, m in BEYOND_SPEC if t == device_type} - {"cancelasync"}
    assert sorted(extra) == []


def test_interface_version_and_driver_strings_answer_as_configured():
    cfg = {"devices": [{"type": "dome", "interface_version": 2, "driver_info": "Dome driver, v2", "driver_version": "6.1"}]}
    with Emulator(cfg) as emu:
        base = f"{emu.url}/api/v1/dome/0"
        assert requests.get(f"{base}/interfaceversion", timeout=TIMEOUT).json()["Value"] == 2
        assert requests.get(f"{base}/driverinfo", timeout=TIMEOUT).json()["Value"] == "Dome driver, v2"
        assert requests.get(f"{base}/driverversion", timeout=TIMEOUT).json()["Value"] == "6.1"
        assert requests.get(f"{base}/devicestate", timeout=TIMEOUT).status_code == 400  # Platform 7 is IDomeV3


# -- behaviour that changed between versions ---------------------------------------------------------


def test_focuser_v1_links_instead_of_connecting():
    with Emulator({"devices": [{"type": "focuser", "interface_version": 1}]}) as emu:
        base = f"{emu.url}/api/v1/focuser/0"
        assert requests.get(f"{base}/connected", timeout=TIMEOUT).status_code == 400
        assert requests.get(f"{base}/link", timeout=TIMEOUT).json()["Value"] is False
        assert requests.get(f"{base}/position", timeout=TIMEOUT).json()["ErrorNumber"] == 0x407  # NotConnected
        assert requests.put(f"{base}/link", data={"Link": "true"}, timeout=TIMEOUT).json()["ErrorNumber"] == 0
        assert requests.get(f"{base}/position", timeout=TIMEOUT).json()["ErrorNumber"] == 0
        # a V1 focuser has no InterfaceVersion: alpyca takes the 400 for version 1, as it should
        assert Focuser(emu.address, 0).InterfaceVersion == 1
        with pytest.raises(AlpacaRequestException) as err:
            Focuser(emu.address, 0).Connected
        assert err.value.number == 400


def test_link_is_gone_from_focuser_v4():
    with Emulator({"devices": [{"type": "focuser", "number": 0, "interface_version": 3}, {"type": "focuser", "number": 1}]}) as emu:
        assert requests.get(f"{emu.url}/api/v1/focuser/0/link", timeout=TIMEOUT).status_code == 200
        resp = requests.get(f"{emu.url}/api/v1/focuser/1/link", timeout=TIMEOUT)
        assert resp.status_code == 400 and "IFocuserV4" in resp.text


@pytest.mark.parametrize("version, blocks", [(2, True), (3, False), (4, False)])
def test_tempcomp_blocks_move_below_focuser_v3(version, blocks):
    with Emulator({"devices": [{"type": "focuser", "interface_version": version, "connected": True}]}, time_scale=100) as emu:
        foc = Focuser(emu.address, 0)
        foc.TempComp = True
        if blocks:
            with pytest.raises(InvalidOperationException):
                foc.Move(100)
        else:
            foc.Move(100)
        foc.TempComp = False
        foc.Move(200)


def test_filterwheel_v1_has_no_common_members_but_works():
    with Emulator({"devices": [{"type": "filterwheel", "interface_version": 1, "connected": True}]}, time_scale=100) as emu:
        fw = FilterWheel(emu.address, 0)
        assert fw.Names[0] == "Luminance"
        for member in ("name", "description", "driverinfo", "interfaceversion", "supportedactions"):
            assert requests.get(f"{emu.url}/api/v1/filterwheel/0/{member}", timeout=TIMEOUT).status_code == 400, member


# -- bad input ------------------------------------------------------------------------------------


def test_a_version_the_type_never_had_names_key_and_valid_values(tmp_path):
    path = tmp_path / "old.toml"
    path.write_text('[[devices]]\ntype = "rotator"\ninterface_version = 7\n', encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        Emulator(path)
    text = str(err.value)
    assert str(path) in text
    assert "devices[0].interface_version" in text
    assert "valid: 1, 2, 3, 4" in text


@pytest.mark.parametrize(
    "device, fragments",
    [
        ({"type": "camera", "interface_version": 2, "offset_mode": "index"}, ["offset_mode", "ICameraV3", "3, 4"]),
        ({"type": "camera", "interface_version": 1, "gain_mode": "value"}, ["gain_mode", "ICameraV2", "2, 3, 4"]),
        ({"type": "rotator", "interface_version": 3, "can_reverse": False}, ["can_reverse", "IRotatorV3", "1, 2"]),
        ({"type": "focuser", "interface_version": 4, "tempcomp_blocks_move": True}, ["tempcomp_blocks_move", "1, 2"]),
        ({"type": "focuser", "interface_version": 2, "tempcomp_blocks_move": False}, ["tempcomp_blocks_move", "3, 4"]),
        ({"type": "telescope", "interface_version": 1, "axis_rates": [[{"minimum": 0, "maximum": 1}], []]}, ["axis_rates", "ITelescopeV2"]),
        (
            {"type": "switch", "interface_version": 2, "switches": [{"name": "a", "can_async": True}]},
            ["switches", "setasync", "ISwitchV3", "(interface versions that allow it: 3)"],
        ),
    ],
)
def test_options_that_contradict_the_version_fail_at_start(device, fragments):
    with pytest.raises(ConfigError) as err:
        config_from_dict({"devices": [device]}, "night.toml")
    text = str(err.value)
    assert text.startswith("night.toml: invalid configuration")
    assert "devices[0]" in text and "contradicts interface_version" in text
    for fragment in fragments:
        assert fragment in text, (fragment, text)


def test_default_version_keeps_legacy_switches():
    """Without an explicit interface_version nothing is checked against it (the latest is served)."""
    cfg = config_from_dict({"devices": [{"type": "rotator", "can_reverse": False}, {"type": "focuser", "tempcomp_blocks_move": True}]})
    assert [d.version for d in cfg.devices] == [4, 4]
