"""Property-based abuse of a served emulator: random paths, verbs, parameters, headers and bodies.

Whatever arrives, the emulator answers within a deadline, never with a 500 or a traceback, and
keeps serving normal requests afterwards. Requests go out through ``http.client`` so that the
path, verb and body reach the server exactly as generated (``requests`` would normalise them).
Hypothesis runs derandomized with a bounded example count, so the test is repeatable and quick.
"""

from __future__ import annotations

import http.client
import json
import socket
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, urlencode

import pytest
from alpaca.safetymonitor import SafetyMonitor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator import Emulator
from emulator.sim.devices import DEVICE_CLASSES

ANSWER_DEADLINE = 10.0  # seconds for any single answer
ALLOWED_STATUS = {200, 400, 403}

MEMBERS = sorted({member for cls in DEVICE_CLASSES.values() for _, member in cls.members})
PARAM_NAMES = [
    "ClientTransactionID", "clienttransactionid", "ClientID", "Connected", "connected", "Position", "Id", "Axis",
    "Value", "State", "Name", "Duration", "Light", "Brightness", "Azimuth", "Altitude", "RightAscension",
    "Declination", "TargetRightAscension", "SensorName", "Action", "Parameters", "Command", "Raw", "Rate",
    "BinX", "NumX", "Gain", "Direction", "SideOfPier", "Tracking", "UTCDate", "Slaved", "",
]
SETTINGS = settings(
    max_examples=300,
    deadline=None,  # each request has its own socket deadline; wall time per example varies on CI
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

fuzz_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
segment = st.one_of(
    st.sampled_from(["api", "v1", "v2", "API", "", ".", "..", "%2e%2e", "%00", "%zz", "management", "setup", "apiversions"]),
    st.sampled_from(sorted(DEVICE_CLASSES) + ["Camera", "TELESCOPE", "telescop", "video"]),
    st.sampled_from(["0", "1", "-1", "00", "4294967296", "99999999999999999999999", "0x1", "1.5", "%200"]),
    st.sampled_from(MEMBERS),
    fuzz_text.map(lambda s: quote(s, safe="")),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.~%!$&'()*+,;=:@", max_size=10),
)
valid_shape = st.tuples(
    st.sampled_from(sorted(DEVICE_CLASSES)), st.sampled_from(["0", "0", "1", "x"]), st.sampled_from(MEMBERS)
).map(lambda t: "/api/v1/" + "/".join(t))
path = st.one_of(valid_shape, valid_shape, st.lists(segment, max_size=7).map(lambda parts: "/" + "/".join(parts)))
value = st.one_of(
    st.sampled_from(["true", "false", "TRUE", "0", "1", "-1", "1,5", "23.456", "nan", "inf", "1e400", "", " ", "%", "\x00"]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    fuzz_text,
)
params = st.lists(st.tuples(st.one_of(st.sampled_from(PARAM_NAMES), fuzz_text), value), max_size=6)
verb = st.sampled_from(["GET", "GET", "PUT", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS"])
body_kind = st.sampled_from(["form", "form", "raw", "none", "json"])
raw_body = st.binary(max_size=300)
accept = st.sampled_from([None, "application/json", "application/imagebytes", "application/imagebytes, application/json", "*/*", "text/html;q=0.5"])
content_type = st.sampled_from(
    [None, "application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=utf-8", "application/json", "text/plain", "multipart/form-data; boundary=x", "nonsense"]
)


@pytest.fixture(scope="module")
def fuzz_emu():
    """One emulator for every example; a small camera keeps ImageArray answers quick."""
    devices = [{"type": t} for t in sorted(DEVICE_CLASSES)]
    for d in devices:
        if d["type"] == "camera":
            d.update(width=40, height=30)
    # control=False: random requests must not be able to add fault rules or reset the devices
    with Emulator({"devices": devices}, time_scale=50, control=False) as emu:
        yield emu


def send(emu: Emulator, method: str, target: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection(emu.host, emu.port, timeout=ANSWER_DEADLINE)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def check_answer(method: str, target: str, status: int, headers: dict, data: bytes) -> None:
    where = f"{method} {target!r}"
    assert status != 500, f"{where}: 500 {data[:300]!r}"
    assert status in ALLOWED_STATUS, f"{where}: unexpected HTTP {status} {data[:200]!r}"
    assert b"Traceback" not in data, f"{where}: traceback in body"
    ctype = headers.get("content-type", "")
    if status == 200 and ctype.startswith("application/json") and method != "HEAD":
        body = json.loads(data)
        assert isinstance(body.get("ErrorNumber"), int) and isinstance(body.get("ServerTransactionID"), int), where
        assert set(body) <= {"Value", "ClientTransactionID", "ServerTransactionID", "ErrorNumber", "ErrorMessage"}, where
    if status == 400 and method != "HEAD":
        assert data.strip(), f"{where}: a 400 must say what was wrong"


@SETTINGS
@given(
    method=verb, target_path=path, query=params, form=params, kind=body_kind, raw=raw_body, acc=accept, ctype=content_type
)
def test_random_requests_never_break_the_emulator(fuzz_emu, method, target_path, query, form, kind, raw, acc, ctype):
    target = target_path
    if query:
        target += "?" + urlencode(query)
    if kind == "form":
        body: bytes | None = urlencode(form).encode()
    elif kind == "raw":
        body = raw
    elif kind == "json":
        body = json.dumps(dict(form)).encode()
    else:
        body = None
    headers = {}
    if acc is not None:
        headers["Accept"] = acc
    if ctype is not None:
        headers["Content-Type"] = ctype
    try:
        status, resp_headers, data = send(fuzz_emu, method, target, body, headers)
    except socket.timeout:
        pytest.fail(f"{method} {target!r}: no answer within {ANSWER_DEADLINE}s")
    check_answer(method, target, status, resp_headers, data)


@settings(SETTINGS, max_examples=60)
@given(garbage=st.binary(min_size=1, max_size=400))
def test_garbage_on_the_socket_is_not_a_500(fuzz_emu, garbage):
    """Bytes that are not HTTP: the server answers 4xx or closes, within a deadline, never 500."""
    with socket.create_connection((fuzz_emu.host, fuzz_emu.port), timeout=ANSWER_DEADLINE) as s:
        s.sendall(garbage + b"\r\n\r\n")
        s.shutdown(socket.SHUT_WR)
        received = b""
        try:
            while chunk := s.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        except socket.timeout:
            pytest.fail(f"no answer or close within {ANSWER_DEADLINE}s for {garbage[:60]!r}")
    assert not received.startswith(b"HTTP/1.1 500") and not received.startswith(b"HTTP/1.0 500"), received[:200]
    assert b"Traceback" not in received


def test_emulator_still_serves_after_fuzzing(fuzz_emu):
    """Runs after the fuzz tests in this module: every worker is free and answers normal requests."""
    sm = SafetyMonitor(fuzz_emu.address, 0)
    sm.Connected = True
    assert sm.Connected is True
    assert isinstance(sm.IsSafe, bool)

    def one(_: int) -> int:
        status, _, data = send(fuzz_emu, "GET", "/api/v1/safetymonitor/0/name?ClientTransactionID=3", None, {})
        assert json.loads(data)["ClientTransactionID"] == 3
        return status

    # more concurrent requests than worker threads: none may be stuck on a hung worker
    with ThreadPoolExecutor(16) as pool:
        assert list(pool.map(one, range(32))) == [200] * 32
