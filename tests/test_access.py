"""Basic auth, bearer tokens and HTTPS, with requests and with alpyca, on really served emulators.

alpyca's device classes take ``protocol="https"`` but no credentials or CA file: they send through
a ``requests.Session`` (``device.rqs``), which honours ``REQUESTS_CA_BUNDLE`` and ``NETRC`` from the
environment (so an unchanged client can be pointed at the certificate and given Basic
credentials), and whose ``auth``/``headers`` can be set (the only way to give it a bearer token).
"""

from __future__ import annotations

import base64
import re
import socket
import ssl
import subprocess
import sys

import pytest
import requests
from alpaca.exceptions import AlpacaRequestException
from alpaca.focuser import Focuser
from alpaca.safetymonitor import SafetyMonitor

from emulator import Emulator
from test_cli import STOP_DEADLINE, read_until, spawn
from test_discovery import REPLY_TIMEOUT, ask

TIMEOUT = 10
ISSAFE = "/api/v1/safetymonitor/0/issafe"
PROTECTED = [ISSAFE, "/management/v1/configureddevices", "/setup", "/simulator/v1/focuser/0/xmlprofile", "/api/v1/nonsense"]


@pytest.fixture(scope="module")
def locked():
    with Emulator(basic_auth=("ann", "s3cret:x"), api_token="tok-123", discovery_port=0) as emu:
        yield emu


@pytest.fixture
def trust(monkeypatch):
    """Point requests (and so alpyca) at a certificate, as a user would: REQUESTS_CA_BUNDLE."""

    def use(path) -> None:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(path))
        monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)

    return use


# -- Basic auth and tokens, with requests ---------------------------------------------------------


@pytest.mark.parametrize("path", PROTECTED)
def test_everything_but_the_control_api_needs_credentials(locked, path):
    resp = requests.get(locked.url + path, timeout=TIMEOUT)
    assert resp.status_code == 401
    assert resp.headers["Content-Type"].startswith("text/plain") and "missing credentials" in resp.text
    challenges = resp.headers["WWW-Authenticate"]  # both challenges, comma-separated (RFC 9110 11.6.1)
    assert challenges.startswith('Basic realm="alpaca-rehearsal"') and 'Bearer realm="alpaca-rehearsal"' in challenges
    assert requests.get(locked.url + path, auth=("ann", "s3cret:x"), timeout=TIMEOUT).status_code in (200, 400)


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Basic " + base64.b64encode(b"ann:wrong").decode()},
        {"Authorization": "Basic " + base64.b64encode(b"bob:s3cret:x").decode()},
        {"Authorization": "Basic not-base64!"},
        {"Authorization": "Bearer tok-12"},
        {"Authorization": "Bearer tok-1234"},
        {"Authorization": "Token tok-123"},
    ],
)
def test_wrong_credentials_are_401(locked, headers):
    resp = requests.get(locked.url + ISSAFE, headers=headers, timeout=TIMEOUT)
    assert resp.status_code == 401 and "wrong credentials" in resp.text


def test_right_credentials_pass_either_scheme(locked):
    for kwargs in ({"auth": ("ann", "s3cret:x")}, {"headers": {"Authorization": "Bearer tok-123"}}, {"headers": {"Authorization": "bearer  tok-123 "}}):
        body = requests.get(locked.url + ISSAFE, timeout=TIMEOUT, **kwargs).json()
        assert body["ErrorNumber"] == 0, kwargs


def test_the_device_never_sees_an_unauthenticated_call(locked):
    requests.put(f"{locked.url}/api/v1/focuser/0/connected", data={"Connected": "true"}, timeout=TIMEOUT)
    assert locked.get_state("focuser")["Connected"] is False
    locked.traffic.clear()
    requests.put(f"{locked.url}/api/v1/focuser/0/connected", data={"Connected": "true"}, timeout=TIMEOUT)
    assert [e.status for e in locked.traffic.entries(member="connected")] == [401]


def test_control_api_and_discovery_keep_their_own_rules(locked):
    assert requests.get(f"{locked.url}/emulator/v1/faults", timeout=TIMEOUT).status_code == 200  # loopback, no token set
    reply = ask(locked.discovery_port, b"alpacadiscovery1", REPLY_TIMEOUT)
    assert reply is not None and f'"AlpacaPort": {locked.port}' in reply.decode()


# -- with alpyca ------------------------------------------------------------------------------------


def test_alpyca_without_credentials_gets_401(locked):
    with pytest.raises(AlpacaRequestException) as err:
        SafetyMonitor(locked.address, 0).IsSafe
    assert err.value.number == 401


def test_alpyca_with_basic_credentials_from_netrc(locked, tmp_path, monkeypatch):
    """Unchanged client code: requests reads Basic credentials for the host from $NETRC."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login ann password s3cret:x\n", encoding="utf-8")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    mon = SafetyMonitor(locked.address, 0)
    mon.Connected = True
    assert mon.IsSafe in (True, False)
    netrc.write_text("machine 127.0.0.1 login ann password nope\n", encoding="utf-8")
    with pytest.raises(AlpacaRequestException) as err:
        SafetyMonitor(locked.address, 0).IsSafe
    assert err.value.number == 401


@pytest.mark.parametrize("how", ["basic", "bearer"])
def test_alpyca_with_credentials_on_its_session(locked, how):
    foc = Focuser(locked.address, 0)
    if how == "basic":
        foc.rqs.auth = ("ann", "s3cret:x")
    else:
        foc.rqs.headers["Authorization"] = "Bearer tok-123"
    foc.Connected = True
    assert foc.Connected is True
    assert foc.MaxStep > 0
    foc.Connected = False
    wrong = Focuser(locked.address, 0)
    wrong.rqs.headers["Authorization"] = "Bearer guess"
    with pytest.raises(AlpacaRequestException) as err:
        wrong.MaxStep
    assert err.value.number == 401


# -- HTTPS ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls():
    with Emulator(https=True, time_scale=50) as emu:
        yield emu


def test_https_certificate_is_served_and_verifiable(tls):
    assert tls.url.startswith("https://127.0.0.1:") and tls.cert_path.is_file()
    body = requests.get(tls.url + ISSAFE, verify=str(tls.cert_path), timeout=TIMEOUT).json()
    assert body["ErrorNumber"] == 0
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(tls.url + ISSAFE, verify=True, timeout=TIMEOUT)  # not a publicly trusted certificate
    served = ssl.get_server_certificate(("127.0.0.1", tls.port))
    assert served.strip() == tls.cert_path.read_text(encoding="ascii").strip()


def test_https_certificate_passes_strict_verification_for_both_names(tls):
    for name in ("127.0.0.1", "localhost"):
        context = ssl.create_default_context(cafile=str(tls.cert_path))
        context.verify_flags |= ssl.VERIFY_X509_STRICT
        with socket.create_connection(("127.0.0.1", tls.port), timeout=TIMEOUT) as raw:
            with context.wrap_socket(raw, server_hostname=name) as s:
                assert s.version() in ("TLSv1.2", "TLSv1.3")


def test_plain_http_to_the_https_port_is_refused_cleanly(tls):
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://{tls.address}{ISSAFE}", timeout=TIMEOUT)
    assert requests.get(tls.url + ISSAFE, verify=str(tls.cert_path), timeout=TIMEOUT).status_code == 200


def test_alpyca_over_https(tls, trust):
    trust(tls.cert_path)
    foc = Focuser(tls.address, 0, protocol="https")
    foc.Connected = True
    foc.Move(foc.Position + 100)
    assert foc.MaxStep == 50000
    foc.Connected = False


def test_alpyca_over_https_refuses_an_untrusted_certificate(tls, trust, tmp_path):
    other = Emulator(https=True, cert_dir=tmp_path)
    with other:
        trust(other.cert_path)  # another emulator's certificate
        with pytest.raises(requests.exceptions.SSLError):
            SafetyMonitor(tls.address, 0, protocol="https").IsSafe


def test_https_with_basic_auth_and_a_large_answer(trust):
    with Emulator({"devices": [{"type": "camera", "connected": True, "width": 640, "height": 480}]}, https=True,
                  basic_auth="ann:pw", time_scale=100) as emu:
        auth, verify = ("ann", "pw"), str(emu.cert_path)
        assert requests.get(f"{emu.url}/api/v1/camera/0/cameraxsize", verify=verify, timeout=TIMEOUT).status_code == 401
        requests.put(f"{emu.url}/api/v1/camera/0/startexposure", data={"Duration": "0.1", "Light": "true"}, auth=auth, verify=verify, timeout=TIMEOUT)
        from support import wait_for

        wait_for(lambda: requests.get(f"{emu.url}/api/v1/camera/0/imageready", auth=auth, verify=verify, timeout=TIMEOUT).json()["Value"],
                 what="the exposure", timeout=15)
        resp = requests.get(f"{emu.url}/api/v1/camera/0/imagearray", auth=auth, verify=verify, timeout=30,
                            headers={"Accept": "application/imagebytes"})
        assert resp.status_code == 200 and len(resp.content) == 44 + 640 * 480 * 2
        trust(emu.cert_path)
        cam = __import__("alpaca.camera", fromlist=["Camera"]).Camera(emu.address, 0, protocol="https")
        cam.rqs.auth = auth
        assert cam.CameraXSize == 640


# -- socket-level faults over HTTPS --------------------------------------------------------------------


def _tls_request(emu: Emulator, path: str) -> socket.socket:
    """A TLS session done in memory over a plain TCP socket, so what TCP does afterwards shows
    (Python's SSLSocket reports a reset as an unexpected EOF); returns the socket, request sent."""
    context = ssl.create_default_context(cafile=str(emu.cert_path))
    raw = socket.create_connection(("127.0.0.1", emu.port), timeout=TIMEOUT)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            raw.sendall(outgoing.read())
            incoming.write(raw.recv(65536))
    tls.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    raw.sendall(outgoing.read())
    return raw


def test_reset_sends_a_tcp_rst_and_drop_a_fin_over_https(tls):
    tls.faults.add(match={"member": "name", "device_type": "telescope"}, action={"kind": "reset"})
    tls.faults.add(match={"member": "name", "device_type": "camera"}, action={"kind": "drop"})
    try:
        with _tls_request(tls, "/api/v1/telescope/0/name") as raw:
            with pytest.raises(ConnectionResetError):
                while raw.recv(65536):  # the session tickets of TLS 1.3 may come first
                    pass
        with _tls_request(tls, "/api/v1/camera/0/name") as raw:
            while True:
                data = raw.recv(65536)
                if not data:
                    break  # an orderly close, no answer
    finally:
        tls.faults.clear()


def test_reset_and_drop_over_https_with_requests(tls):
    verify = str(tls.cert_path)
    with tls.faults.add(match={"device_type": "safetymonitor", "member": "issafe"}, action={"kind": "reset", "phase": "request"}, trigger={"count": 1}) as rule:
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(tls.url + ISSAFE, verify=verify, timeout=TIMEOUT)
        assert rule.fired == 1
    with tls.faults.add(match={"member": "issafe"}, action={"kind": "drop", "phase": "response"}, trigger={"count": 1}):
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(tls.url + ISSAFE, verify=verify, timeout=TIMEOUT)
    assert requests.get(tls.url + ISSAFE, verify=verify, timeout=TIMEOUT).status_code == 200
    outcomes = [e.outcome for e in tls.traffic.entries(member="issafe")][-3:]
    assert outcomes == ["reset", "dropped", "answered"]


def test_truncate_and_latency_over_https():
    with Emulator(https=True) as tls:  # its own: the latency timer thread ends with it
        _truncate_and_latency(tls)


def _truncate_and_latency(tls: Emulator) -> None:
    verify = str(tls.cert_path)
    with tls.faults.add(match={"member": "issafe"}, action={"kind": "truncate", "fraction": 0.5}, trigger={"count": 1}):
        with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
            requests.get(tls.url + ISSAFE, verify=verify, timeout=TIMEOUT)
    with tls.faults.add(match={"member": "issafe"}, action={"kind": "latency", "ms": 300}, trigger={"count": 1}):
        resp = requests.get(tls.url + ISSAFE, verify=verify, timeout=TIMEOUT)
    assert resp.status_code == 200 and resp.elapsed.total_seconds() >= 0.3
    with tls.faults.add(match={"member": "configureddevices"}, action={"kind": "slow_body", "bytes_per_s": 4000}, trigger={"count": 1}):
        resp = requests.get(tls.url + "/management/v1/configureddevices", verify=verify, timeout=TIMEOUT)
    assert resp.status_code == 200 and len(resp.json()["Value"]) == 10  # dribbled through TLS, whole
    with tls.faults.add(match={"member": "issafe"}, action={"kind": "hang", "max_s": 0.5}, trigger={"count": 1}):
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(tls.url + ISSAFE, verify=verify, timeout=TIMEOUT)  # closed after max_s, no answer
    assert tls.traffic.entries(member="issafe")[-1].outcome == "hung"


def test_refuse_over_https():
    with Emulator(https=True) as tls:  # its own: the outage timer thread ends with it
        _refuse(tls)


def _refuse(tls: Emulator) -> None:
    verify = str(tls.cert_path)
    with tls.faults.add(match={"member": "issafe"}, action={"kind": "refuse", "duration_s": 0.5}, trigger={"count": 1}):
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(tls.url + ISSAFE, verify=verify, timeout=TIMEOUT)
        from support import wait_for

        wait_for(lambda: _answers(tls.url + ISSAFE, verify), what="the port to listen again", timeout=10, interval=0.1)


def _answers(url: str, verify: str) -> bool:
    try:
        return requests.get(url, verify=verify, timeout=TIMEOUT).status_code == 200
    except requests.exceptions.ConnectionError:
        return False


# -- the command line -------------------------------------------------------------------------------------


def test_cli_prints_the_certificate_path_and_requires_credentials(tmp_path):
    proc = spawn("--port", "0", "--no-discovery", "--https", "--cert-dir", str(tmp_path), "--basic-auth", "ann:pw", "--api-token", "t0k")
    try:
        url = read_until(proc, r"listening on (https://127\.0\.0\.1:\d+)").group(1)
        cert = read_until(proc, r"certificate: (\S+)").group(1)
        assert cert == str(tmp_path / "cert.pem")
        assert requests.get(url + ISSAFE, verify=cert, timeout=TIMEOUT).status_code == 401
        assert requests.get(url + ISSAFE, verify=cert, auth=("ann", "pw"), timeout=TIMEOUT).status_code == 200
        assert requests.get(url + ISSAFE, verify=cert, headers={"Authorization": "Bearer t0k"}, timeout=TIMEOUT).status_code == 200
    finally:
        proc.terminate()
        proc.communicate(timeout=STOP_DEADLINE)


def test_cli_rejects_a_malformed_basic_auth():
    out = subprocess.run([sys.executable, "-m", "emulator.cli", "--basic-auth", "no-colon"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and re.search(r"--basic-auth: expected USER:PASSWORD", out.stderr)
