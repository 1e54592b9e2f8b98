"""alpaca-proxy in front of a real emulator: the same answers, the same faults, upstream failures.

Every test serves a real emulator and a real proxy on loopback sockets and talks to the proxy
with plain ``requests`` or alpyca. The protocol tests of ``test_protocol.py`` run here a second
time, through the proxy (their ``emu`` is the proxy, standing for the emulator behind it).
"""

from __future__ import annotations

import http.client
import inspect
import json
import re
import socket
import threading
import time

import pytest
import requests
import urllib3
from alpaca.exceptions import DriverException
from alpaca.focuser import Focuser

import test_protocol as _protocol
from conform import Options, Outcome, run
from emulator import Emulator
from proxy import Proxy
from proxy.devices import MIN_INTERVAL_S
from support import wait_until

TIMEOUT = 10


class ThroughProxy:
    """The emulator as its tests know it, but every address is the proxy's."""

    def __init__(self, emu: Emulator, proxy: Proxy) -> None:
        self._emu = emu
        self.proxy = proxy
        self.url, self.address, self.port = proxy.url, proxy.address, proxy.port

    def __getattr__(self, name: str):
        return getattr(self._emu, name)


@pytest.fixture
def emu():
    """For the protocol tests taken from test_protocol.py: a fresh emulator, seen through a proxy."""
    with Emulator() as upstream, Proxy(upstream.address) as proxy:
        yield ThroughProxy(upstream, proxy)


@pytest.fixture
def pair():
    with Emulator() as upstream, Proxy(upstream.address) as proxy:
        yield upstream, proxy


# Every protocol test that takes the per-test emulator runs here through the proxy. Left out:
# the ones that start emulators of their own (the proxy is not in their way).
_OWN_EMULATORS = {"strict_and_lenient"}
for _name, _test in vars(_protocol).items():
    if _name.startswith("test_") and callable(_test):
        _params = set(inspect.signature(_test).parameters)
        if "emu" in _params and not _params & _OWN_EMULATORS:
            globals()[f"{_name}__through_proxy"] = _test
PROTOCOL_TESTS = sorted(n for n in globals() if n.endswith("__through_proxy"))


def test_the_protocol_tests_really_run_through_the_proxy():
    assert len(PROTOCOL_TESTS) >= 30, PROTOCOL_TESTS


def _bad(report) -> list[str]:
    return [f"{r.check.id}: {r.message} | sent {r.sent} | got {r.got}" for r in report.results if r.outcome in (Outcome.FAILED, Outcome.WARNING)]


@pytest.mark.timeout(240)
def test_conform_strict_through_the_proxy_finds_what_it_finds_directly():
    devices = [("safetymonitor", 0), ("switch", 0), ("focuser", 0), ("dome", 0), ("filterwheel", 0)]
    with Emulator(time_scale=100) as direct:
        expected = run(direct.url, Options(strict=True, operation_timeout_s=30), devices)
    with Emulator(time_scale=100) as upstream, Proxy(upstream.address) as proxy:
        report = run(proxy.url, Options(strict=True, operation_timeout_s=30), devices)
    assert len(report.results) > 300
    assert not _bad(report), "\n".join(_bad(report))
    assert report.count(Outcome.FAILED) == expected.count(Outcome.FAILED) == 0
    assert sorted(r.check.id for r in report.results) == sorted(r.check.id for r in expected.results)


def test_answers_are_the_upstreams_byte_for_byte(pair):
    upstream, proxy = pair
    for path in ("/api/v1/safetymonitor/0/issafe?ClientTransactionID=5", "/management/v1/configureddevices", "/api/v1/nope/0/x"):
        a = requests.get(proxy.url + path, timeout=TIMEOUT)
        b = requests.get(upstream.url + path, timeout=TIMEOUT)
        assert a.status_code == b.status_code
        assert a.headers["Content-Type"] == b.headers["Content-Type"]
        if "json" in a.headers["Content-Type"]:  # each answer has its own ServerTransactionID
            a_doc, b_doc = a.json(), b.json()
            assert a_doc.pop("ServerTransactionID") + 1 == b_doc.pop("ServerTransactionID")
            assert a_doc == b_doc
        else:
            assert a.content == b.content
    # the form body goes upstream as sent, and the device acts
    r = requests.put(f"{proxy.url}/api/v1/focuser/0/connected", data={"Connected": "true", "ClientTransactionID": "8"}, timeout=TIMEOUT)
    assert r.json()["ClientTransactionID"] == 8 and upstream.device("focuser").connected is True


def test_a_rule_on_the_proxy_affects_only_the_matched_member(pair):
    upstream, proxy = pair
    focuser = Focuser(proxy.address, 0)
    focuser.Connected = True
    before = focuser.Position
    proxy.faults.add({"match": {"device_type": "focuser", "member": "position"}, "action": {"kind": "ascom_error", "number": "0x500"}})
    with pytest.raises(DriverException):
        focuser.Position
    assert focuser.IsMoving is False and focuser.MaxStep > 0  # the other members answer as before
    assert Focuser(upstream.address, 0).Position == before  # the device itself is untouched
    # the faulted call never reached the upstream; the others did
    assert upstream.traffic.count(device_type="focuser", member="position") == 2
    assert proxy.traffic.count(device_type="focuser", member="position") == 2
    proxy.faults.clear()
    proxy.faults.add({"match": {"device_type": "focuser", "member": "ismoving"}, "action": {"kind": "drop"}})
    with pytest.raises(Exception):
        focuser.IsMoving
    assert focuser.Position == before
    [entry] = proxy.traffic.entries(member="ismoving")[-1:]
    assert entry.outcome == "dropped"


def test_content_and_socket_level_kinds_act_on_the_upstreams_answer(pair):
    upstream, proxy = pair
    url = f"{proxy.url}/api/v1/safetymonitor/0/issafe"
    with proxy.faults.add({"match": {"member": "issafe"}, "action": {"kind": "bad_json"}}):
        assert requests.get(url, timeout=TIMEOUT).text.startswith("<<not JSON>>")
    with proxy.faults.add({"match": {"member": "issafe"}, "action": {"kind": "missing_key", "key": "Value"}}):
        assert "Value" not in requests.get(url, timeout=TIMEOUT).json()
    with proxy.faults.add({"match": {"member": "issafe"}, "action": {"kind": "http_status", "status": 503}}):
        assert requests.get(url, timeout=TIMEOUT).status_code == 503
    with proxy.faults.add({"match": {"member": "issafe"}, "action": {"kind": "truncate", "fraction": 0.5}}):
        with pytest.raises(requests.exceptions.ChunkedEncodingError):  # half the body, then the close
            requests.get(url, timeout=TIMEOUT)
    with proxy.faults.add({"match": {"member": "issafe"}, "action": {"kind": "reset", "phase": "response"}}):
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(url, timeout=TIMEOUT)
    # phase response: the request went upstream, the answer was kept from the client
    # http_status answered for the device; the four others went upstream
    assert upstream.traffic.count(member="issafe") == 4
    assert requests.get(url, timeout=TIMEOUT).json()["ErrorNumber"] == 0


def test_a_rule_with_several_actions_on_the_proxy_acts_as_on_the_emulator(pair):
    """latency + truncate + bad_json in one rule: the upstream's answer, late, broken, then cut,
    exactly the bytes the same rule makes of the emulator's own answer; named once, fired once."""
    upstream, proxy = pair
    rule = {"name": "bad link", "match": {"device_type": "management", "member": "description"},
            "actions": [{"kind": "latency", "ms": 200}, {"kind": "truncate", "fraction": 0.5}, {"kind": "bad_json"}]}

    def cut(base: str) -> tuple[bytes, float]:
        got = bytearray()
        t0 = time.monotonic()
        with pytest.raises(urllib3.exceptions.ProtocolError):  # the close before the whole body
            with requests.get(f"{base}/management/v1/description", timeout=TIMEOUT, stream=True) as r:
                for chunk in r.raw.stream(64, decode_content=False):
                    got += chunk
        return bytes(got), time.monotonic() - t0

    live = proxy.faults.add(rule)
    through, took = cut(proxy.url)
    assert through.startswith(b"<<not JSON>> ") and took >= 0.2
    assert (live.matched, live.fired) == (1, 1)
    (entry,) = proxy.traffic.entries(device_type="management")
    assert (entry.rules, entry.shadowed, entry.outcome) == (["bad link"], [], "truncated")
    assert upstream.traffic.count(device_type="management") == 1  # the device answered; the proxy broke it
    upstream.faults.add(rule)
    direct, took = cut(upstream.url)
    assert direct == through and took >= 0.2


def test_the_control_api_steers_the_proxy(pair):
    _, proxy = pair
    control = f"{proxy.url}/emulator/v1"
    rule = requests.post(f"{control}/faults", json={"match": {"member": "name"}, "action": {"kind": "ascom_error"}}, timeout=TIMEOUT)
    assert rule.status_code == 201
    assert requests.get(f"{proxy.url}/api/v1/dome/0/name", timeout=TIMEOUT).json()["ErrorNumber"] == 0x500
    assert requests.get(f"{control}/faults/{rule.json()['id']}", timeout=TIMEOUT).json()["fired"] == 1
    traffic = requests.get(f"{control}/traffic", params={"member": "name"}, timeout=TIMEOUT).json()
    assert [t["rules"] for t in traffic] == [[rule.json()["id"]]]
    state = requests.get(f"{control}/devices/dome/0/state", timeout=TIMEOUT)
    assert state.status_code == 404 and "upstream" in state.json()["error"]
    assert requests.post(f"{control}/reset", timeout=TIMEOUT).json() == {"reset": True}
    assert len(proxy.faults) == 0


def test_discovery_advertises_the_proxy_with_the_upstreams_devices():
    with Emulator() as upstream, Proxy(upstream.address, discovery_port=0) as proxy:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.sendto(b"alpacadiscovery1", ("127.0.0.1", proxy.discovery_port))
            reply, _ = s.recvfrom(1024)
        port = json.loads(reply)["AlpacaPort"]
        assert port == proxy.port
        listed = requests.get(f"http://127.0.0.1:{port}/management/v1/configureddevices", timeout=TIMEOUT).json()["Value"]
        direct = requests.get(f"{upstream.url}/management/v1/configureddevices", timeout=TIMEOUT).json()["Value"]
        assert listed == direct


def _raw_get(port: int, path: str) -> BaseException:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        pytest.fail(f"expected no answer, got {resp.status} {resp.read()!r}")
    except (ConnectionError, http.client.HTTPException) as exc:
        return exc
    finally:
        conn.close()


def test_upstream_failures_look_like_a_failing_device():
    with Emulator() as upstream:
        address = upstream.address
        with Proxy(address, upstream_timeout_s=0.5) as proxy:
            # the upstream resets the connection: the client's is reset
            upstream.faults.add({"match": {"member": "issafe"}, "action": {"kind": "reset"}})
            assert isinstance(_raw_get(proxy.port, "/api/v1/safetymonitor/0/issafe"), ConnectionResetError)
            # the upstream never answers: after the upstream timeout the client's connection closes, unanswered
            upstream.faults.clear()
            upstream.faults.add({"match": {"member": "name"}, "action": {"kind": "hang", "max_s": 5}})
            assert isinstance(_raw_get(proxy.port, "/api/v1/safetymonitor/0/name"), http.client.RemoteDisconnected)
            upstream.faults.clear()
            assert requests.get(f"{proxy.url}/api/v1/safetymonitor/0/name", timeout=TIMEOUT).status_code == 200
    with Proxy(address) as proxy:  # the upstream is gone: refused upstream, reset here
        assert isinstance(_raw_get(proxy.port, "/api/v1/safetymonitor/0/issafe"), ConnectionResetError)
        outcomes = [e.outcome for e in proxy.traffic.entries()]
        assert outcomes == ["upstream-refused"]
        # the control API still answers
        assert requests.get(f"{proxy.url}/emulator/v1/faults", timeout=TIMEOUT).json() == []


def test_a_pooled_connection_the_upstream_closed_is_replaced(pair):
    upstream, proxy = pair
    url = f"{proxy.url}/api/v1/safetymonitor/0/issafe"
    assert requests.get(url, timeout=TIMEOUT).status_code == 200
    # the upstream closes every open connection (the pooled one too) for a moment
    upstream.faults.add({"match": {"member": "name"}, "action": {"kind": "down", "duration_s": 0.2}, "trigger": {"count": 1}})
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{upstream.url}/api/v1/safetymonitor/0/name", timeout=TIMEOUT)
    deadline = time.monotonic() + 10
    while True:  # the outage ends by itself; the next request through the proxy is answered
        try:
            requests.get(f"{upstream.url}/management/apiversions", timeout=TIMEOUT)
            break
        except requests.exceptions.ConnectionError:
            assert time.monotonic() < deadline
    for _ in range(3):
        assert requests.get(url, timeout=TIMEOUT).json()["ErrorNumber"] == 0


# -- the web panel on the proxy: the upstream's devices, the proxy's rules and traffic ------------------


def _rule_rows(page: str) -> list[str]:
    return re.findall(r"<tr data-rule='(r\d+)'", page)


def test_the_panel_names_every_upstream_device_and_the_proxys_rules(pair):
    upstream, proxy = pair
    proxy.faults.add({"name": "camera outage", "match": {"device_type": "camera"}, "action": {"kind": "http_status", "status": 503}})
    proxy.faults.add({"match": {"device_type": "dome", "member": "slewing"}, "action": "bad_json"})
    assert proxy.panel_url == proxy.url + "/"
    for path in ("/", "/emulator/panel"):
        resp = requests.get(proxy.url + path, timeout=TIMEOUT)
        assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/html"), path
        page = resp.text
        assert f"alpaca-proxy for {upstream.address}" in page and "the upstream&#x27;s" in page
        for dev in upstream.devices():
            assert f"data-device='{dev.device_type}/{dev.number}'" in page and dev.name in page
        assert _rule_rows(page) == [r.id for r in proxy.faults.list()]
        assert "camera outage" in page and "http_status" in page and "bad_json" in page
        assert "data-camera" not in page  # no preview: the frames are the upstream's
    assert requests.get(proxy.url + "/emulator/panel/static/panel.js", timeout=TIMEOUT).status_code == 200
    # the panel's state reads went straight to the upstream: the proxy's log has only the pages
    assert [e.path for e in proxy.traffic.entries()] == ["/"]
    # the setup URLs are the upstream's, forwarded as they are
    setup = "/setup/v1/focuser/0/setup"
    assert requests.get(proxy.url + setup, timeout=TIMEOUT).text == requests.get(upstream.url + setup, timeout=TIMEOUT).text
    # a rule on everything breaks /, as on the emulator; /emulator/panel and the API it polls stay
    proxy.faults.add({"action": {"kind": "http_status", "status": 503}})
    assert requests.get(proxy.url + "/", timeout=TIMEOUT).status_code == 503
    assert requests.get(proxy.url + "/emulator/panel", timeout=TIMEOUT).status_code == 200
    assert requests.get(proxy.url + "/emulator/v1/devices", timeout=TIMEOUT).status_code == 200


def test_the_device_list_is_the_upstreams_with_state_read_past_the_rules():
    config = {"devices": [{"type": "safetymonitor", "connected": True}, {"type": "focuser"}, {"type": "dome", "number": 2, "connected": True}]}
    with Emulator(config) as upstream, Proxy(upstream.address) as proxy:
        proxy.faults.add({"match": {"device_type": "safetymonitor"}, "action": {"kind": "ascom_error"}})
        listing = requests.get(proxy.url + "/emulator/v1/devices", timeout=TIMEOUT).json()
        configured = upstream.registry.configured_devices()
        assert [(d["device_type"], d["device_number"], d["name"], d["unique_id"]) for d in listing] == sorted(
            (c["DeviceType"].lower(), c["DeviceNumber"], c["DeviceName"], c["UniqueID"]) for c in configured)
        dome, focuser, monitor = listing
        assert monitor["state"] == {"Connected": True, "IsSafe": True} and monitor["settable"] == {} and monitor["note"] is None
        assert focuser["state"] == {"Connected": False} and "not connected" in focuser["note"]
        assert dome["state"]["ShutterStatus"] == upstream.get_state("dome", 2)["ShutterStatus"] and "Azimuth" in dome["state"]
        # the rule answers clients with an error; the panel reads the device's own state, unlogged
        assert requests.get(proxy.url + "/api/v1/safetymonitor/0/issafe", timeout=TIMEOUT).json()["ErrorNumber"] == 0x500
        assert proxy.traffic.count(member="issafe") == 1
        upstream.set_state("safetymonitor", IsSafe=False)

        def monitor_state():
            return requests.get(proxy.url + "/emulator/v1/devices", timeout=TIMEOUT).json()[2]["state"]

        assert wait_until(lambda: monitor_state().get("IsSafe") is False, 5)
        assert proxy.traffic.count(member="issafe") == 1
        # the devices are the upstream's: nothing to set through the proxy
        put = requests.put(proxy.url + "/emulator/v1/devices/safetymonitor/0/state", json={"IsSafe": True}, timeout=TIMEOUT)
        assert put.status_code == 404 and "upstream" in put.json()["error"]


def test_the_panel_on_the_proxys_control_port_where_no_rule_reaches():
    with Emulator({"devices": [{"type": "safetymonitor"}, {"type": "focuser"}]}) as upstream, \
            Proxy(upstream.address, control_port=0) as proxy:
        assert proxy.panel_url == f"http://127.0.0.1:{proxy.control_port}/"
        proxy.faults.add({"action": {"kind": "http_status", "status": 503}})
        assert requests.get(proxy.url + "/", timeout=TIMEOUT).status_code == 503
        page = requests.get(proxy.panel_url, timeout=TIMEOUT)
        assert page.status_code == 200 and "Rehearsal Focuser" in page.text and "Rehearsal SafetyMonitor" in page.text
        assert _rule_rows(page.text) == [proxy.faults.list()[0].id] and "http_status" in page.text
        assert requests.get(proxy.panel_url + "emulator/panel/static/panel.js", timeout=TIMEOUT).status_code == 200
        listing = requests.get(proxy.panel_url + "emulator/v1/devices", timeout=TIMEOUT).json()
        assert [d["device_type"] for d in listing] == ["focuser", "safetymonitor"]


def test_the_panel_stays_when_the_upstream_goes():
    upstream = Emulator({"devices": [{"type": "safetymonitor", "connected": True}]}).start()
    address = upstream.address
    try:
        with Proxy(upstream.address) as proxy:
            assert requests.get(proxy.url + "/emulator/v1/devices", timeout=TIMEOUT).json()[0]["state"]["IsSafe"] is True
            upstream.stop()

            def gone():
                listing = requests.get(proxy.url + "/emulator/v1/devices", timeout=TIMEOUT).json()
                return listing if listing[0]["state"] == {} else None

            [monitor] = wait_until(gone, 5)
            assert monitor["name"] == "Rehearsal SafetyMonitor 0" and "gave no device list" in monitor["note"]
            page = requests.get(proxy.url + "/emulator/panel", timeout=TIMEOUT)
            assert page.status_code == 200 and "gave no device list" in page.text
    finally:
        upstream.stop()
    with Proxy(address) as proxy:  # never reached: no devices, the page still answers
        assert requests.get(proxy.url + "/emulator/v1/devices", timeout=TIMEOUT).json() == []
        page = requests.get(proxy.url + "/", timeout=TIMEOUT)
        assert page.status_code == 200 and "No devices." in page.text


def test_without_the_control_api_root_is_the_upstreams():
    with Emulator({"devices": [{"type": "safetymonitor"}]}) as upstream, Proxy(upstream.address, control=False) as proxy:
        assert proxy.panel_url is None
        root = requests.get(proxy.url + "/", timeout=TIMEOUT)
        assert root.status_code == 200 and "alpaca-proxy for" not in root.text and "Rehearsal SafetyMonitor" in root.text


def test_a_hanging_upstream_does_not_hold_the_panel():
    """A member that never answers costs the panel's reader thread its timeout, not the control
    API's threads: a call during that read answers the last read's result, a later one notes it."""
    config = {"devices": [{"type": "safetymonitor", "connected": True}, {"type": "focuser", "connected": True}]}
    with Emulator(config) as upstream, Proxy(upstream.address, upstream_timeout_s=1.0, control_port=0) as proxy:
        devices = proxy.control_url + "/devices"
        assert requests.get(devices, timeout=TIMEOUT).json()[1]["state"]["IsSafe"] is True
        upstream.faults.add({"match": {"member": "issafe"}, "action": {"kind": "hang", "max_s": 2}})
        time.sleep(MIN_INTERVAL_S)  # the last read is old: the next call asks for a new one
        during = requests.get(devices, timeout=TIMEOUT).json()  # while the new read waits on IsSafe
        assert during[1]["state"]["IsSafe"] is True and during[1]["note"] is None
        focuser, monitor = wait_until(lambda: (listing := requests.get(devices, timeout=TIMEOUT).json())[1]["note"] and listing, 5)
        assert "IsSafe" in monitor["note"] and "IsSafe" not in monitor["state"]
        assert focuser["state"]["Connected"] is True and "Position" in focuser["state"]
        assert requests.get(proxy.panel_url, timeout=TIMEOUT).status_code == 200
        upstream.faults.clear()
    assert not [t.name for t in threading.enumerate() if t.name.startswith("upstream-devices")]  # stop() ended the reader


def test_the_proxys_panel_keeps_the_control_apis_token_rule():
    with Emulator({"devices": [{"type": "safetymonitor"}]}) as upstream, Proxy(upstream.address, control_token="s3cret") as proxy:
        bare = requests.get(proxy.url + "/", timeout=TIMEOUT)
        assert bare.status_code == 401 and "name='token'" in bare.text and "Rehearsal SafetyMonitor" not in bare.text
        session = requests.Session()
        right = session.get(proxy.url + "/?token=s3cret", timeout=TIMEOUT, allow_redirects=False)
        assert right.status_code == 303 and right.headers["Location"] == "/"
        assert "Rehearsal SafetyMonitor" in session.get(proxy.url + "/", timeout=TIMEOUT).text
        assert session.get(proxy.url + "/emulator/v1/devices", timeout=TIMEOUT).json()[0]["device_type"] == "safetymonitor"
        assert requests.get(proxy.url + "/emulator/v1/devices", timeout=TIMEOUT).status_code == 401
