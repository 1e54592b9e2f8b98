"""Management API (reference section 4.2), setup pages (section 4.1), and alpyca's management functions."""

from __future__ import annotations

import uuid

import requests
from alpaca import management

from emulator import Emulator
from emulator.sim.devices import DEVICE_CLASSES, DEVICE_TYPE_NAMES

TIMEOUT = 10
TWO_FOCUSERS = {"devices": [{"type": "focuser", "number": 0}, {"type": "focuser", "number": 1}, {"type": "safetymonitor"}]}


def get_json(emu: Emulator, path: str, **params: str) -> dict:
    resp = requests.get(emu.url + path, params=params, timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"].split(";")[0] == "application/json"
    body = resp.json()
    assert set(body) == {"Value", "ClientTransactionID", "ServerTransactionID", "ErrorNumber", "ErrorMessage"}
    assert body["ErrorNumber"] == 0 and body["ErrorMessage"] == ""
    return body


def test_apiversions(emu):
    body = get_json(emu, "/management/apiversions", ClientTransactionID="17")
    assert body["Value"] == [1]
    assert body["ClientTransactionID"] == 17
    assert body["ServerTransactionID"] >= 1


def test_management_keys_are_case_insensitive_and_ids_echoed(emu):
    assert get_json(emu, "/management/apiversions", clienttransactionid="5")["ClientTransactionID"] == 5
    assert get_json(emu, "/management/v1/description", CLIENTTRANSACTIONID="6")["ClientTransactionID"] == 6
    assert get_json(emu, "/management/v1/configureddevices")["ClientTransactionID"] == 0


def test_description(emu):
    value = get_json(emu, "/management/v1/description")["Value"]
    assert set(value) == {"ServerName", "Manufacturer", "ManufacturerVersion", "Location"}
    assert all(isinstance(v, str) and v for v in value.values())


def test_description_from_config():
    cfg = {"emulator": {"server_name": "Dome Room", "location": "La Palma"}, "devices": [{"type": "dome"}]}
    with Emulator(cfg) as emu:
        value = get_json(emu, "/management/v1/description")["Value"]
    assert value["ServerName"] == "Dome Room" and value["Location"] == "La Palma"


def test_configured_devices_default_lists_all_ten(emu):
    devices = get_json(emu, "/management/v1/configureddevices")["Value"]
    assert len(devices) == 10
    for d in devices:
        assert set(d) == {"DeviceName", "DeviceType", "DeviceNumber", "UniqueID"}
        assert d["DeviceNumber"] == 0
        uuid.UUID(d["UniqueID"])  # a well-formed UUID string
    assert sorted(d["DeviceType"] for d in devices) == sorted(DEVICE_TYPE_NAMES.values())
    assert len({d["UniqueID"] for d in devices}) == 10


def test_unique_ids_stable_across_restarts_and_distinct():
    def ids(cfg: dict | None) -> dict[tuple[str, int], str]:
        with Emulator(cfg) as emu:
            return {(d["DeviceType"], d["DeviceNumber"]): d["UniqueID"] for d in management.configureddevices(emu.address)}

    first, second = ids(TWO_FOCUSERS), ids(TWO_FOCUSERS)
    assert first == second
    assert first[("Focuser", 0)] != first[("Focuser", 1)]
    assert len(set(first.values())) == len(first) == 3
    # the same device in another config keeps its id; a default emulator's devices differ from each other
    default = ids(None)
    assert default[("SafetyMonitor", 0)] == first[("SafetyMonitor", 0)]
    assert len(set(default.values())) == 10


def test_configured_unique_id_is_used():
    cfg = {"devices": [{"type": "rotator", "unique_id": "rot-0001", "name": "Field Rotator"}]}
    with Emulator(cfg) as emu:
        (d,) = get_json(emu, "/management/v1/configureddevices")["Value"]
    assert d == {"DeviceName": "Field Rotator", "DeviceType": "Rotator", "DeviceNumber": 0, "UniqueID": "rot-0001"}


def test_alpyca_management_functions(emu):
    assert management.apiversions(emu.address) == [1]
    desc = management.description(emu.address)
    assert desc["ServerName"]
    devices = management.configureddevices(emu.address)
    assert {d["DeviceType"] for d in devices} == set(DEVICE_TYPE_NAMES.values())


def test_mis_cased_management_path_is_400(emu):
    for path in ("/Management/apiversions", "/management/ApiVersions", "/management/v2/description", "/management/v1/"):
        resp = requests.get(emu.url + path, timeout=TIMEOUT)
        assert resp.status_code == 400, path
        assert resp.headers["Content-Type"].startswith("text/plain")


def test_management_put_is_400(emu):
    resp = requests.put(emu.url + "/management/apiversions", timeout=TIMEOUT)
    assert resp.status_code == 400
    assert "Traceback" not in resp.text


# -- HTML setup pages ----------------------------------------------------------------------------


def test_setup_lists_devices_and_state(emu):
    emu.set_state("safetymonitor", 0, IsSafe=False)
    resp = requests.get(emu.url + "/setup", timeout=TIMEOUT)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/html")
    page = resp.text
    assert "<html" in page.lower()
    for device_type in DEVICE_CLASSES:
        assert f"/setup/v1/{device_type}/0/setup" in page, device_type
        assert emu.device(device_type).name in page
    assert "IsSafe" in page and "Connected" in page


def test_setup_page_follows_state_changes(emu):
    def row() -> str:
        page = requests.get(emu.url + "/setup/v1/safetymonitor/0/setup", timeout=TIMEOUT).text
        return page.split("IsSafe", 1)[1][:60].lower()

    assert "true" in row()
    emu.set_state("safetymonitor", 0, IsSafe=False)
    assert "false" in row()


def test_device_setup_page_for_each_device(emu):
    for device_type in DEVICE_CLASSES:
        resp = requests.get(f"{emu.url}/setup/v1/{device_type}/0/setup", timeout=TIMEOUT)
        assert resp.status_code == 200, (device_type, resp.text[:200])
        assert resp.headers["Content-Type"].startswith("text/html")
        assert emu.device(device_type).name in resp.text


def test_device_setup_page_unknown_device_is_403_html(emu):
    # The management API specifies 403 with an HTML message for an unsupported setup URL.
    for path in ("/setup/v1/focuser/3/setup", "/setup/v1/telescop/0/setup", "/setup/v1/focuser/x/setup"):
        resp = requests.get(emu.url + path, timeout=TIMEOUT)
        assert resp.status_code == 403, path
        assert resp.headers["Content-Type"].startswith("text/html")
        assert "Traceback" not in resp.text


def test_setup_pages_escape_html():
    cfg = {"devices": [{"type": "switch", "name": "<script>alert(1)</script>"}]}
    with Emulator(cfg) as emu:
        for path in ("/setup", "/setup/v1/switch/0/setup"):
            page = requests.get(emu.url + path, timeout=TIMEOUT).text
            assert "<script>alert" not in page
            assert "&lt;script&gt;alert(1)" in page
