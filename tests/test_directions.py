"""Direction (downstream: on the reply; upstream: on the request's bytes) for latency, slow_body and
truncate, and the bandwidth kind, each with a client polling another member beside it and the
control port answering while the fault acts.

Durations are checked as lower bounds only (a shaped request cannot be faster than its shaping);
whether the device has acted yet is read from its model, not from timing.
"""

from __future__ import annotations

import threading
import time

import pytest
import requests

from emulator import Emulator
from proxy import Proxy
from support import wait_for
from test_lockout import Poller

CONFIG = {"devices": [{"type": "telescope", "connected": True}, {"type": "focuser", "connected": True}]}
TRACKING = "/api/v1/telescope/0/tracking"
FORM = {"Tracking": "True", "ClientID": "1", "ClientTransactionID": "5"}
QUERY = "ClientTransactionID=123456&ClientID=1"
QUERY_FRACTION = (len("ClientTransactionID=12") + 0.5) / len(QUERY)


@pytest.fixture
def emu():
    with Emulator(CONFIG, control_port=0, time_scale=1000) as e, Poller(e.address) as poller:
        e.poller = poller
        yield e
        assert poller.outages() == 0  # the client beside the fault never lost the device
        assert poller.answered_since(0.0)


class Call:
    """One request in a thread: ``.response``/``.error`` and ``.took`` once ``.done``."""

    def __init__(self, method: str, url: str, **kw) -> None:
        self.response: requests.Response | None = None
        self.error: BaseException | None = None
        self.took = 0.0
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(method, url, kw), daemon=True)
        self._thread.start()

    def _run(self, method: str, url: str, kw: dict) -> None:
        t0 = time.monotonic()
        try:
            self.response = requests.request(method, url, timeout=30, **kw)
        except requests.RequestException as exc:
            self.error = exc
        self.took = time.monotonic() - t0
        self.done.set()

    def join(self) -> "Call":
        assert self.done.wait(30)
        self._thread.join(5)
        return self


def _control_answers_during(emu, call: Call, rule_id: str) -> None:
    """While ``call`` is held by the rule: the control port lists it, fired."""
    wait_for(lambda: emu.faults.get(rule_id).fired >= 1, what="the rule to fire")
    assert not call.done.is_set()
    listed = requests.get(f"{emu.control_url}/faults/{rule_id}", timeout=5).json()
    assert listed["fired"] >= 1


def _tracking(emu) -> bool:
    return emu.get_state("telescope")["Tracking"]


def test_latency_downstream_the_device_acts_at_once_and_its_answer_waits(emu):
    rule = emu.faults.add(match={"member": "tracking", "verb": "PUT"}, action={"kind": "latency", "ms": 800})
    assert rule.spec.action.direction == "downstream"
    call = Call("PUT", emu.url + TRACKING, data=FORM)
    wait_for(lambda: _tracking(emu), what="the device to act before the answer")
    _control_answers_during(emu, call, rule.id)
    call.join()
    assert call.response.status_code == 200 and call.response.json()["ClientTransactionID"] == 5
    assert call.took >= 0.8
    (entry,) = emu.traffic.entries(member="tracking")
    assert entry.duration_s >= 0.8 and entry.rules == [rule.id] and entry.outcome == "answered"


def test_latency_upstream_the_device_acts_after_the_wait(emu):
    rule = emu.faults.add(match={"member": "tracking", "verb": "PUT"}, action={"kind": "latency", "ms": 800, "direction": "upstream"})
    call = Call("PUT", emu.url + TRACKING, data=FORM)
    _control_answers_during(emu, call, rule.id)
    assert not _tracking(emu)  # the app has not read the request yet
    call.join()
    assert call.response.status_code == 200 and _tracking(emu)
    assert call.took >= 0.8


def test_latency_downstream_holds_no_worker():
    """Two workers, four held answers: the poller and the control port are still served."""
    with Emulator(CONFIG, control_port=0, threads=2) as emu, Poller(emu.address) as poller:
        rule = emu.faults.add(match={"device_type": "focuser"}, action={"kind": "latency", "ms": 1500})
        calls = [Call("GET", emu.url + "/api/v1/focuser/0/position") for _ in range(4)]
        wait_for(lambda: rule.fired == 4, what="four held answers")
        t = time.monotonic()
        wait_for(lambda: poller.answered_since(t, 5), what="the poller to be answered meanwhile")
        assert requests.get(f"{emu.control_url}/faults", timeout=5).ok
        assert not any(c.done.is_set() for c in calls)
        for c in calls:
            assert c.join().response.status_code == 200
        assert poller.outages() == 0


def test_bandwidth_downstream_caps_the_reply(emu):
    url = emu.url + "/management/v1/configureddevices"
    size = len(requests.get(url, timeout=5).content)
    rule = emu.faults.add(match={"device_type": "management"}, action={"kind": "bandwidth", "bytes_per_s": 400})
    call = Call("GET", url)
    _control_answers_during(emu, call, rule.id)
    call.join()
    assert len(call.response.content) == size and call.response.json()["Value"]  # whole, intact
    assert call.took >= size / 400
    # two caps: the lowest wins; with latency on top, the delay adds
    emu.faults.add(match={"device_type": "management"}, action={"kind": "bandwidth", "bytes_per_s": 200})
    emu.faults.add(match={"device_type": "management"}, action={"kind": "latency", "ms": 300})
    call = Call("GET", url).join()
    assert call.took >= size / 200 + 0.3
    assert call.response.json()["Value"]


def test_bandwidth_upstream_delays_the_request_and_holds_no_worker():
    with Emulator(CONFIG, control_port=0, threads=2) as emu, Poller(emu.address) as poller:
        rule = emu.faults.add(match={"member": "tracking", "verb": "PUT"},
                              action={"kind": "bandwidth", "bytes_per_s": 200, "direction": "upstream"})
        calls = [Call("PUT", emu.url + TRACKING, data=FORM) for _ in range(3)]
        wait_for(lambda: rule.fired == 3, what="three throttled requests")
        assert not _tracking(emu)  # none has reached the app yet
        t = time.monotonic()
        wait_for(lambda: poller.answered_since(t, 5), what="the poller to be answered meanwhile")
        assert requests.get(f"{emu.control_url}/faults", timeout=5).ok
        for c in calls:
            c.join()
            assert c.response.status_code == 200
            assert c.took >= 0.5  # a request line, headers and form of well over 100 bytes at 200 B/s
        assert _tracking(emu)
        assert poller.outages() == 0


def test_slow_body_upstream_the_app_gets_the_form_late(emu):
    rule = emu.faults.add(match={"member": "tracking", "verb": "PUT"},
                          action={"kind": "slow_body", "bytes_per_s": 50, "direction": "upstream"})
    body = "&".join(f"{k}={v}" for k, v in FORM.items())
    call = Call("PUT", emu.url + TRACKING, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    _control_answers_during(emu, call, rule.id)
    assert not _tracking(emu)
    call.join()
    assert call.response.status_code == 200 and _tracking(emu)
    assert call.took >= len(body) / 50
    # downstream (the default) still dribbles the reply's body
    rule.update(action={"direction": "downstream", "bytes_per_s": 40})
    call = Call("PUT", emu.url + TRACKING, data=FORM).join()
    assert call.response.json()["ClientTransactionID"] == 5
    assert call.took >= len(call.response.content) / 40


def test_truncate_upstream_the_device_acts_on_the_cut_request(emu):
    body = "Position=1234&ClientID=1&ClientTransactionID=9"
    keep = len("Position=12")
    rule = emu.faults.add(match={"device_type": "focuser", "verb": "PUT"},
                          action={"kind": "truncate", "fraction": (keep + 0.5) / len(body), "direction": "upstream"})
    r = requests.put(emu.url + "/api/v1/focuser/0/move", data=body,
                     headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=5)
    assert r.status_code == 200
    assert r.json()["ClientTransactionID"] == 0  # it was cut away
    wait_for(lambda: emu.get_state("focuser")["Position"] == 12, what="the focuser to move to the cut position")
    (entry,) = emu.traffic.entries(device_type="focuser", verb="PUT")
    assert entry.outcome == "truncated" and entry.params["Position"] == "1234"  # the log shows what was sent
    # a GET's query string is what it cuts when there is no body
    rule.update(match={"verb": "GET"}, action={"fraction": QUERY_FRACTION})
    r = requests.get(emu.url + "/api/v1/focuser/0/position?" + QUERY, timeout=5)
    assert r.json()["ClientTransactionID"] == 12  # QUERY cut after "ClientTransactionID=12"
    assert rule.fired == 2


def test_truncate_upstream_through_the_proxy_reaches_the_upstream_cut():
    with Emulator(CONFIG) as upstream, Proxy(upstream.address, control_port=0) as prox:
        prox.faults.add(match={"verb": "GET"}, action={"kind": "truncate", "fraction": QUERY_FRACTION, "direction": "upstream"})
        r = requests.get(prox.url + "/api/v1/focuser/0/position?" + QUERY, timeout=5)
        assert r.json()["ClientTransactionID"] == 12
        (seen,) = upstream.traffic.entries(member="position")
        assert seen.params == {"ClientTransactionID": "12"}


def test_truncate_downstream_is_still_the_default(emu):
    emu.faults.add(match={"member": "position"}, action={"kind": "truncate", "fraction": 0.3})
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(emu.url + "/api/v1/focuser/0/position", timeout=5).json()


@pytest.mark.parametrize(
    "action, field",
    [
        ({"kind": "latency", "ms": 5, "direction": "sideways"}, "action.latency.direction"),
        ({"kind": "bandwidth", "bytes_per_s": 0}, "action.bandwidth.bytes_per_s"),
        ({"kind": "bandwidth"}, "action.bandwidth.bytes_per_s"),
        ({"kind": "truncate", "direction": "up"}, "action.truncate.direction"),
    ],
)
def test_bad_direction_or_rate_names_the_field(emu, action, field):
    r = requests.post(f"{emu.control_url}/faults", json={"action": action}, timeout=5)
    assert r.status_code == 400
    fields = [e["field"] for e in r.json()["errors"]]
    assert any(f.replace(".latency", "").replace(".bandwidth", "").replace(".truncate", "") ==
               field.replace(".latency", "").replace(".bandwidth", "").replace(".truncate", "") for f in fields), fields
