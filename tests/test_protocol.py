"""Alpaca protocol rules (reference section 2, design.md) on a really served emulator.

Plain ``requests`` is used on purpose: alpyca always sends well-formed requests and hides
the status code and raw body, which are exactly what these rules are about.
"""

from __future__ import annotations

import json

import pytest
import requests
from alpaca.exceptions import NotConnectedException
from alpaca.safetymonitor import SafetyMonitor

from emulator import Emulator

TIMEOUT = 10
ENVELOPE = {"Value", "ClientTransactionID", "ServerTransactionID", "ErrorNumber", "ErrorMessage"}
NO_VALUE = ENVELOPE - {"Value"}


def assert_400_text(resp: requests.Response, *fragments: str) -> None:
    """A protocol rejection: HTTP 400, a plain-text (not JSON) body that says what was wrong."""
    assert resp.status_code == 400, (resp.status_code, resp.text)
    assert resp.headers["Content-Type"].startswith("text/plain"), resp.headers["Content-Type"]
    assert resp.text.strip(), "a 400 must say what was wrong"
    assert "Traceback" not in resp.text
    with pytest.raises(ValueError):
        json.loads(resp.text)
    for fragment in fragments:
        assert fragment.lower() in resp.text.lower(), (fragment, resp.text)


def ok_json(resp: requests.Response) -> dict:
    assert resp.status_code == 200, (resp.status_code, resp.text)
    assert resp.headers["Content-Type"].split(";")[0].strip() == "application/json"
    return resp.json()


def api(emu: Emulator, path: str) -> str:
    return f"{emu.url}/api/v1/{path}"


# -- paths -------------------------------------------------------------------------------------


def test_valid_path_answers_200_json(emu):
    body = ok_json(requests.get(api(emu, "safetymonitor/0/issafe"), timeout=TIMEOUT))
    assert set(body) == ENVELOPE
    assert body["ErrorNumber"] == 0 and body["ErrorMessage"] == ""
    assert body["Value"] is False  # IsSafe is False while disconnected, not an error


@pytest.mark.parametrize(
    "path",
    [
        "/API/V1/SAFETYMONITOR/0/ISSAFE",
        "/Api/V1/SafetyMonitor/0/IsSafe",
        "/api/v1/safetymonitoR/0/issafe",
        "/api/v1/safetymonitor/0/IsSafe",
        "/api/V1/safetymonitor/0/issafe",
        "/API/v1/safetymonitor/0/issafe",
    ],
)
def test_mis_cased_path_is_400_text(emu, path):
    assert_400_text(requests.get(emu.url + path, timeout=TIMEOUT))


@pytest.mark.parametrize(
    "path",
    [
        "/apii/v1/safetymonitor/0/issafe",
        "/api/v2/safetymonitor/0/issafe",
        "/api/v1/safetymonitor/0",
        "/api/v1/safetymonitor",
        "/api/v1/",
        "/api",
        "/api/v1/safetymonitor/0/issafe/extra",
        "/api/v1/safetymonitor/0/issafe/",
        "/api/v1/safetymonitor//issafe",
        "/nothing/here",
        "/favicon.ico",
    ],
)
def test_bad_path_is_400_text(emu, path):
    assert_400_text(requests.get(emu.url + path, timeout=TIMEOUT))
    assert_400_text(requests.put(emu.url + path, data={"Connected": "true"}, timeout=TIMEOUT))


def test_root_is_the_panel_and_other_paths_400_not_404(emu):
    # / is the web panel (tests/test_panel.py); any other non-Alpaca path keeps the 400 rule
    assert requests.get(emu.url + "/", timeout=TIMEOUT).headers["Content-Type"].startswith("text/html")
    assert_400_text(requests.get(emu.url + "/index.html", timeout=TIMEOUT), "not a valid Alpaca path")
    assert_400_text(requests.put(emu.url + "/", timeout=TIMEOUT))


def test_unknown_device_type(emu):
    assert_400_text(requests.get(api(emu, "telescop/0/canslew"), timeout=TIMEOUT), "telescop")
    assert_400_text(requests.get(api(emu, "video/0/connected"), timeout=TIMEOUT), "video")


@pytest.mark.parametrize("number", ["1", "7", "4294967295", "4294967296", "99999999999999999999", "-1", "x", "0x0", "1.0", " 0"])
def test_unknown_or_invalid_device_number(emu, number):
    assert_400_text(requests.get(api(emu, f"safetymonitor/{number}/issafe"), timeout=TIMEOUT))


def test_unknown_member(emu):
    # the reference's own example: CanSlew is not a camera member
    assert_400_text(requests.get(api(emu, "camera/0/canslew"), timeout=TIMEOUT), "canslew")
    assert_400_text(requests.get(api(emu, "safetymonitor/0/nosuchmember"), timeout=TIMEOUT), "nosuchmember")
    assert_400_text(requests.put(api(emu, "safetymonitor/0/nosuchmember"), timeout=TIMEOUT), "nosuchmember")


# -- verbs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "DELETE", "PATCH", "OPTIONS"])
def test_other_http_methods_are_400_not_405(emu, method):
    for path in ("safetymonitor/0/issafe", "safetymonitor/0/connected", "telescop/0/x"):
        assert_400_text(requests.request(method, api(emu, path), data={"Connected": "true"}, timeout=TIMEOUT))


def test_head_is_400(emu):
    resp = requests.head(api(emu, "safetymonitor/0/issafe"), timeout=TIMEOUT)
    assert resp.status_code == 400


def test_wrong_verb_for_member_is_400(emu):
    # GET-only member written to; PUT-only member read
    assert_400_text(requests.put(api(emu, "safetymonitor/0/issafe"), timeout=TIMEOUT), "issafe")
    assert_400_text(requests.get(api(emu, "safetymonitor/0/connect"), timeout=TIMEOUT), "connect")
    assert_400_text(requests.get(api(emu, "safetymonitor/0/commandblind"), timeout=TIMEOUT))


# -- parameters --------------------------------------------------------------------------------


def test_missing_put_parameter_is_400(emu):
    assert_400_text(requests.put(api(emu, "safetymonitor/0/connected"), timeout=TIMEOUT), "Connected")
    assert_400_text(requests.put(api(emu, "safetymonitor/0/connected"), data={"ClientID": "1"}, timeout=TIMEOUT), "Connected")


@pytest.mark.parametrize("value", ["maybe", "", "1", "yes", "tru"])
def test_unparseable_bool_is_400(emu, value):
    assert_400_text(requests.put(api(emu, "safetymonitor/0/connected"), data={"Connected": value}, timeout=TIMEOUT), "Connected")


@pytest.mark.parametrize("value", ["true", "True", "TRUE", "tRuE"])
def test_bool_values_any_casing(emu, value):
    body = ok_json(requests.put(api(emu, "safetymonitor/0/connected"), data={"Connected": value}, timeout=TIMEOUT))
    assert body["ErrorNumber"] == 0
    assert ok_json(requests.get(api(emu, "safetymonitor/0/connected"), timeout=TIMEOUT))["Value"] is True


def test_put_keys_are_case_sensitive(emu):
    for key in ("connected", "CONNECTED", "conNected"):
        assert_400_text(requests.put(api(emu, "safetymonitor/0/connected"), data={key: "true"}, timeout=TIMEOUT), "Connected")
    assert emu.device("safetymonitor").connected is False


def test_get_keys_are_case_insensitive(emu):
    for key in ("ClientTransactionID", "clienttransactionid", "CLIENTTRANSACTIONID", "clientTransactionId"):
        body = ok_json(requests.get(api(emu, f"safetymonitor/0/issafe?{key}=23&clientid=231"), timeout=TIMEOUT))
        assert body["ClientTransactionID"] == 23, key


def test_get_required_parameter_keys_are_case_insensitive(emu):
    requests.put(api(emu, "observingconditions/0/connected"), data={"Connected": "true"}, timeout=TIMEOUT)
    for key in ("SensorName", "sensorname", "SENSORNAME"):
        body = ok_json(requests.get(api(emu, f"observingconditions/0/sensordescription?{key}=Temperature"), timeout=TIMEOUT))
        assert body["ErrorNumber"] in (0, 0x400), body  # parsed fine (0x400: sensor not implemented)
    assert_400_text(requests.get(api(emu, "observingconditions/0/sensordescription"), timeout=TIMEOUT), "SensorName")
    for key in ("Axis", "axis", "AXIS"):
        body = ok_json(requests.get(api(emu, f"telescope/0/canmoveaxis?{key}=0"), timeout=TIMEOUT))
        assert body["ErrorNumber"] == 0x407  # parsed fine; the telescope is simply not connected
    assert_400_text(requests.get(api(emu, "telescope/0/canmoveaxis"), timeout=TIMEOUT), "Axis")
    assert_400_text(requests.get(api(emu, "telescope/0/canmoveaxis?Axis=primary"), timeout=TIMEOUT), "Axis")


def test_put_mis_cased_client_transaction_id_is_ignored(emu):
    for key, echoed in (("ClientTransactionID", 42), ("clienttransactionid", 0), ("CLIENTTRANSACTIONID", 0)):
        body = ok_json(requests.put(api(emu, "safetymonitor/0/connected"), data={"Connected": "false", key: "42"}, timeout=TIMEOUT))
        assert body["ClientTransactionID"] == echoed, key


@pytest.mark.parametrize("raw, echoed", [(None, 0), ("0", 0), ("1", 1), ("23", 23), ("4294967295", 4294967295)])
def test_client_transaction_id_echo(emu, raw, echoed):
    params = {} if raw is None else {"ClientTransactionID": raw}
    body = ok_json(requests.get(api(emu, "safetymonitor/0/issafe"), params=params, timeout=TIMEOUT))
    assert body["ClientTransactionID"] == echoed
    data = {"Connected": "false", **params}
    body = ok_json(requests.put(api(emu, "safetymonitor/0/connected"), data=data, timeout=TIMEOUT))
    assert body["ClientTransactionID"] == echoed


#: The bad-ID cases of ConformU's strict protocol checks (empty, blank, negative, non-numeric),
#: and two more a uint32 rules out (fractional, one past the range); "1,000" is another culture.
BAD_IDS = ["", " ", "-1", "abc", "1.5", "4294967296", "1,000"]
ID_KEYS = ["ClientID", "ClientTransactionID"]


@pytest.fixture(scope="module")
def strict_and_lenient():
    with Emulator() as strict, Emulator(lenient_ids=True) as lenient:
        yield strict, lenient


@pytest.mark.parametrize("key", ID_KEYS)
@pytest.mark.parametrize("raw", BAD_IDS)
def test_bad_ids_are_400_by_default(strict_and_lenient, key, raw):
    emu, _ = strict_and_lenient
    assert_400_text(requests.get(api(emu, "safetymonitor/0/issafe"), params={key: raw}, timeout=TIMEOUT), key)
    # A PUT with a bad ID is refused before the device acts.
    resp = requests.put(api(emu, "safetymonitor/0/connected"), data={"Connected": "true", key: raw}, timeout=TIMEOUT)
    assert_400_text(resp, key)
    assert ok_json(requests.get(api(emu, "safetymonitor/0/connected"), timeout=TIMEOUT))["Value"] is False
    # The management API keeps the same rule.
    assert_400_text(requests.get(f"{emu.url}/management/v1/description", params={key: raw}, timeout=TIMEOUT), key)


@pytest.mark.parametrize("key", ID_KEYS)
@pytest.mark.parametrize("raw", BAD_IDS)
def test_bad_ids_are_ignored_when_lenient(strict_and_lenient, key, raw):
    _, emu = strict_and_lenient
    body = ok_json(requests.get(api(emu, "safetymonitor/0/issafe"), params={key: raw}, timeout=TIMEOUT))
    assert body["ErrorNumber"] == 0 and body["ClientTransactionID"] == 0
    body = ok_json(requests.put(api(emu, "safetymonitor/0/connected"), data={"Connected": "false", key: raw}, timeout=TIMEOUT))
    assert body["ErrorNumber"] == 0 and body["ClientTransactionID"] == 0
    body = ok_json(requests.get(f"{emu.url}/management/v1/description", params={key: raw}, timeout=TIMEOUT))
    assert body["ClientTransactionID"] == 0


def test_lenient_ids_from_config_and_cli(tmp_path):
    from emulator.cli import build_parser

    cfg = tmp_path / "lenient.toml"
    cfg.write_text('[emulator]\nlenient_ids = true\n\n[[devices]]\ntype = "safetymonitor"\n')
    with Emulator(cfg) as emu:
        assert ok_json(requests.get(api(emu, "safetymonitor/0/issafe"), params={"ClientID": "-1"}, timeout=TIMEOUT))["ErrorNumber"] == 0
    assert build_parser().parse_args(["--lenient-ids"]).lenient_ids is True
    assert build_parser().parse_args([]).lenient_ids is None  # the config decides


def test_unknown_parameters_are_ignored(emu):
    body = ok_json(requests.get(api(emu, "safetymonitor/0/issafe?Foo=bar&=x&lonely"), timeout=TIMEOUT))
    assert body["ErrorNumber"] == 0
    body = ok_json(requests.put(api(emu, "safetymonitor/0/connected"), data={"Connected": "true", "Extra": "1"}, timeout=TIMEOUT))
    assert body["ErrorNumber"] == 0


@pytest.mark.parametrize("value", ["1,5", "23,456", "1.000,5", "1 000", "nan", "inf", "0x10", ""])
def test_numbers_with_a_comma_or_other_culture_are_400(emu, value):
    resp = requests.put(api(emu, "telescope/0/targetrightascension"), data={"TargetRightAscension": value}, timeout=TIMEOUT)
    assert_400_text(resp, "TargetRightAscension")


def test_integers_with_a_comma_are_400(emu):
    resp = requests.put(api(emu, "focuser/0/move"), data={"Position": "1,000"}, timeout=TIMEOUT)
    assert_400_text(resp, "Position")
    resp = requests.put(api(emu, "focuser/0/move"), data={"Position": "10.5"}, timeout=TIMEOUT)
    assert_400_text(resp, "Position")


def test_invariant_culture_number_accepted(emu):
    requests.put(api(emu, "telescope/0/connected"), data={"Connected": "true"}, timeout=TIMEOUT)
    body = ok_json(requests.put(api(emu, "telescope/0/targetrightascension"), data={"TargetRightAscension": "23.456"}, timeout=TIMEOUT))
    assert body["ErrorNumber"] == 0, body
    body = ok_json(requests.get(api(emu, "telescope/0/targetrightascension"), timeout=TIMEOUT))
    assert body["Value"] == pytest.approx(23.456)


def test_non_utf8_body_is_400(emu):
    resp = requests.put(
        api(emu, "safetymonitor/0/connected"),
        data=b"Connected=\xff\xfe",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=TIMEOUT,
    )
    assert_400_text(resp, "UTF-8")
    assert emu.device("safetymonitor").connected is False


# -- the envelope ------------------------------------------------------------------------------


def test_server_transaction_id_starts_at_1_and_increases():
    with Emulator() as emu:
        seen = []
        for i in range(6):
            path = "safetymonitor/0/issafe" if i % 2 else "safetymonitor/0/name"
            seen.append(ok_json(requests.get(api(emu, path), timeout=TIMEOUT))["ServerTransactionID"])
        seen.append(ok_json(requests.put(api(emu, "safetymonitor/0/connected"), data={"Connected": "true"}, timeout=TIMEOUT))["ServerTransactionID"])
        seen.append(ok_json(requests.get(api(emu, "safetymonitor/0/devicestate"), timeout=TIMEOUT))["ServerTransactionID"])
    assert seen[0] == 1
    assert all(b > a for a, b in zip(seen, seen[1:])), seen


def test_server_transaction_id_increases_under_concurrency(emu):
    from concurrent.futures import ThreadPoolExecutor

    def one(_):
        with requests.Session() as s:
            return [ok_json(s.get(api(emu, "safetymonitor/0/issafe"), timeout=TIMEOUT))["ServerTransactionID"] for _ in range(10)]

    with ThreadPoolExecutor(4) as pool:
        ids = [i for chunk in pool.map(one, range(4)) for i in chunk]
    assert len(set(ids)) == len(ids), "ServerTransactionIDs must be unique"


def test_envelope_keys_exact(emu):
    # GET with a value
    assert set(ok_json(requests.get(api(emu, "safetymonitor/0/name"), timeout=TIMEOUT))) == ENVELOPE
    # PUT without a return value: no Value key
    body = ok_json(requests.put(api(emu, "safetymonitor/0/connected"), data={"Connected": "false"}, timeout=TIMEOUT))
    assert set(body) == NO_VALUE
    # an ASCOM error: 200, a non-zero ErrorNumber, a message, no Value
    body = ok_json(requests.get(api(emu, "safetymonitor/0/devicestate"), timeout=TIMEOUT))
    assert set(body) <= ENVELOPE and NO_VALUE <= set(body)
    assert body["ErrorNumber"] == 0x407 and body["ErrorMessage"]
    # a PUT method that returns a value (CommandString) answers with an error here, still JSON
    body = ok_json(requests.put(api(emu, "safetymonitor/0/commandstring"), data={"Command": "x", "Raw": "false"}, timeout=TIMEOUT))
    assert NO_VALUE <= set(body) <= ENVELOPE and body["ErrorNumber"] != 0


def test_key_casing_and_types_in_envelope(emu):
    body = ok_json(requests.get(api(emu, "safetymonitor/0/interfaceversion?ClientTransactionID=9"), timeout=TIMEOUT))
    assert isinstance(body["ClientTransactionID"], int) and isinstance(body["ServerTransactionID"], int)
    assert isinstance(body["ErrorNumber"], int) and isinstance(body["ErrorMessage"], str)
    assert body["Value"] == 3


def test_not_connected_is_0x407_for_members_that_need_a_connection(emu):
    body = ok_json(requests.get(api(emu, "safetymonitor/0/devicestate"), timeout=TIMEOUT))
    assert body["ErrorNumber"] == 0x407
    sm = SafetyMonitor(emu.address, 0)
    with pytest.raises(NotConnectedException):
        sm.DeviceState
    # members usable while disconnected
    assert sm.Connected is False and sm.Name and sm.InterfaceVersion == 3


def test_action_unknown_is_an_ascom_error_not_400(emu):
    requests.put(api(emu, "safetymonitor/0/connected"), data={"Connected": "true"}, timeout=TIMEOUT)
    body = ok_json(requests.put(api(emu, "safetymonitor/0/action"), data={"Action": "nope", "Parameters": ""}, timeout=TIMEOUT))
    assert body["ErrorNumber"] in (0x40C, 0x400)
    assert_400_text(requests.put(api(emu, "safetymonitor/0/action"), data={"action": "nope", "Parameters": ""}, timeout=TIMEOUT), "Action")


def test_json_numbers_use_a_period(emu):
    requests.put(api(emu, "observingconditions/0/connected"), data={"Connected": "true"}, timeout=TIMEOUT)
    resp = requests.get(api(emu, "observingconditions/0/temperature"), timeout=TIMEOUT)
    body = ok_json(resp)
    if body["ErrorNumber"] == 0:
        assert isinstance(body["Value"], (int, float))
        assert "," not in json.dumps(body["Value"])


def test_chunked_put_body_is_read(emu):
    """Some clients stream the form body (Transfer-Encoding: chunked, no Content-Length)."""

    def body():
        yield b"Connected=true&"
        yield b"ClientTransactionID=4"

    resp = requests.put(
        api(emu, "safetymonitor/0/connected"),
        data=body(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=TIMEOUT,
    )
    assert resp.request.headers.get("Transfer-Encoding") == "chunked"
    assert ok_json(resp)["ClientTransactionID"] == 4
    assert emu.device("safetymonitor").connected is True


@pytest.mark.parametrize("member", ["commandblind", "commandbool", "commandstring"])
def test_command_raw_is_a_boolean(emu, member):
    """The spec types Raw as a boolean: anything else is an unparseable parameter (found by alpaca-conform)."""
    resp = requests.put(api(emu, f"focuser/0/{member}"), data={"Command": "x", "Raw": "asduio6fghZZ"}, timeout=TIMEOUT)
    assert_400_text(resp, "Raw")
    body = ok_json(requests.put(api(emu, f"focuser/0/{member}"), data={"Command": "x", "Raw": "true"}, timeout=TIMEOUT))
    assert body["ErrorNumber"] != 0  # parsed; the device simply does not implement commands
