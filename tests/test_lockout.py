"""The operator is never locked out: outages (refuse, down) under a client that polls a device.

Each test runs a real alpyca client in a thread, polling a device every 20 ms as observatory
software does, adds an outage rule over HTTP, and checks from outside: the control API on its own
port answers during the outage (the rule is listed, and can be removed), the outage is a window
that ends by itself (or repeats exactly as its trigger says), the device answers again after it,
and nothing is left behind.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import pytest
import requests
from alpaca.telescope import Telescope

from emulator import Emulator
from proxy import Proxy
from support import refused as _refused, wait_for
from test_cli import REPO, read_until, spawn, stop

CONFIG = {"devices": [{"type": "telescope", "connected": True}]}
WINDOW_S = 1.5  # the example; long enough that a loaded machine still checks inside it


class Poller:
    """An alpyca client reading Telescope.Name every 20 ms in a thread; ``log`` holds (time, ok)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.log: list[tuple[float, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="poller", daemon=True)

    def _run(self) -> None:
        scope = Telescope(self.address, 0)
        try:
            while not self._stop.wait(0.02):
                try:
                    scope.Name
                    ok = True
                except requests.exceptions.RequestException:
                    ok = False
                self.log.append((time.monotonic(), ok))
        finally:
            scope.rqs.close()

    def outages(self) -> int:
        """How many runs of failed reads the log holds."""
        runs, before = 0, True
        for _, ok in list(self.log):
            if before and not ok:
                runs += 1
            before = ok
        return runs

    def longest_outage_s(self) -> float:
        """From a run's first failed read to the next answered one, the longest."""
        longest, start = 0.0, None
        for when, ok in list(self.log):
            if not ok and start is None:
                start = when
            elif ok and start is not None:
                longest, start = max(longest, when - start), None
        return longest

    def failing(self) -> bool:
        return bool(self.log) and not self.log[-1][1]

    def answered_since(self, t: float, n: int = 5) -> bool:
        """The last ``n`` reads, all after ``t``, were answered."""
        tail = self.log[-n:]
        return len(tail) == n and all(ok and when > t for when, ok in tail)

    def __enter__(self) -> "Poller":
        self._thread.start()
        wait_for(lambda: self.answered_since(0.0), what="the poller's first answers")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        assert not self._thread.is_alive()


def _port_free(port: int) -> bool:
    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind(("127.0.0.1", port))
        probe.listen(1)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def _add(control_url: str, rule: dict) -> dict:
    r = requests.post(f"{control_url}/faults", json=rule, timeout=5)
    assert r.status_code == 201, r.text
    return r.json()


def _rule(control_url: str, rule_id: str) -> dict:
    r = requests.get(f"{control_url}/faults/{rule_id}", timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("kind", ["refuse", "down"])
def test_an_outage_is_a_window_that_ends_by_itself(kind):
    """The issue's defect: without a count the outage fires once; the first request after the
    re-listen is answered, and the poller never loses the device again."""
    with Emulator(CONFIG, control_port=0) as emu, Poller(emu.address) as poller:
        ports = (emu.port, emu.control_port)
        rule = _add(emu.control_url, {"action": {"kind": kind, "duration_s": WINDOW_S}})
        wait_for(poller.failing, what="the poller to see the outage")
        assert _refused(emu.port)
        listed = requests.get(f"{emu.control_url}/faults", timeout=5).json()  # during the outage
        assert [(r["id"], r["fired"]) for r in listed] == [(rule["id"], 1)]
        back = wait_for(lambda: not poller.failing() and poller.answered_since(0.0, 1), what="recovery")
        t_back = time.monotonic()
        wait_for(lambda: poller.answered_since(t_back, 10), what="ten reads after the window")
        assert back
        assert poller.outages() == 1
        assert _rule(emu.control_url, rule["id"])["fired"] == 1
        assert requests.delete(f"{emu.control_url}/faults/{rule['id']}", timeout=5).status_code == 200
        assert emu.traffic.count(rule=rule["id"]) == 1
        assert emu.traffic.entries(rule=rule["id"])[0].outcome == ("refused" if kind == "refuse" else "down")
    assert all(_port_free(p) for p in ports)


@pytest.mark.parametrize("kind", ["refuse", "down"])
def test_a_count_trigger_repeats_the_outage_that_many_times(kind):
    """count 2: the first request after the first window trips the second (so the poller sees one
    outage of two windows), then it is over."""
    with Emulator(CONFIG, control_port=0) as emu, Poller(emu.address) as poller:
        ports = (emu.port, emu.control_port)
        rule = _add(emu.control_url, {"action": {"kind": kind, "duration_s": WINDOW_S}, "trigger": {"count": 2}})
        wait_for(poller.failing, what="the first outage")
        assert requests.get(f"{emu.control_url}/faults/{rule['id']}", timeout=5).json()["fired"] == 1
        wait_for(lambda: _rule(emu.control_url, rule["id"])["fired"] == 2, what="the second outage", timeout=10)
        wait_for(lambda: poller.failing(), what="the poller to see the second outage")
        assert requests.get(f"{emu.control_url}/faults", timeout=5).ok  # reachable during it
        wait_for(lambda: not poller.failing(), what="recovery after the second window")
        t_back = time.monotonic()
        wait_for(lambda: poller.answered_since(t_back, 10), what="ten reads after it")
        assert poller.outages() == 1
        assert poller.longest_outage_s() >= 2 * WINDOW_S * 0.9
        assert _rule(emu.control_url, rule["id"])["fired"] == 2
        assert [e.outcome for e in emu.traffic.entries(rule=rule["id"])] == [{"refuse": "refused"}.get(kind, kind)] * 2
    assert all(_port_free(p) for p in ports)


@pytest.mark.parametrize("kind", ["refuse", "down"])
def test_a_repeating_outage_is_removed_over_the_control_port_during_it(kind):
    """every 2 repeats without end; the operator lists and removes it while the device is away."""
    with Emulator(CONFIG, control_port=0) as emu, Poller(emu.address) as poller:
        rule = _add(emu.control_url, {"action": {"kind": kind, "duration_s": WINDOW_S}, "trigger": {"every": 2}})
        wait_for(lambda: _rule(emu.control_url, rule["id"])["fired"] == 2, what="the outage to repeat", timeout=10)
        wait_for(poller.failing, what="the poller to see the repeated outage")
        assert _refused(emu.port)
        listed = requests.get(f"{emu.control_url}/faults", timeout=5)
        assert [r["id"] for r in listed.json()] == [rule["id"]]
        assert requests.delete(f"{emu.control_url}/faults/{rule['id']}", timeout=5).json() == {"removed": rule["id"]}
        assert requests.get(f"{emu.control_url}/faults", timeout=5).json() == []
        wait_for(lambda: not poller.failing(), what="recovery after the window")
        t_back = time.monotonic()
        wait_for(lambda: poller.answered_since(t_back, 10), what="ten reads after it")
        assert poller.outages() == 2


@pytest.mark.parametrize("undo", ["delete", "disable", "reset"])
def test_removing_the_rule_ends_its_outage(undo):
    """A 60 s outage, undone over the control port: the device answers again at once, not after
    the window (the deadline below is a quarter of it)."""
    with Emulator(CONFIG, control_port=0) as emu, Poller(emu.address) as poller:
        rule = _add(emu.control_url, {"set": "night", "action": {"kind": "down", "duration_s": 60}})
        wait_for(poller.failing, what="the outage")
        if undo == "delete":
            assert requests.delete(f"{emu.control_url}/faults/{rule['id']}", timeout=5).ok
        elif undo == "disable":
            assert requests.put(f"{emu.control_url}/faultsets/night", json={"enabled": False}, timeout=5).ok
        else:
            assert requests.post(f"{emu.control_url}/reset", timeout=5).ok
        wait_for(lambda: not poller.failing(), what="the device back before the window ends", timeout=15)
        t_back = time.monotonic()
        wait_for(lambda: poller.answered_since(t_back, 10), what="ten reads after it")
        assert poller.outages() == 1


def test_the_same_port_control_api_comes_back_after_the_window():
    """Without a control port of its own the outage takes the same-port API away for its window
    only; then the rule can be read and removed there."""
    with Emulator(CONFIG) as emu, Poller(emu.address) as poller:
        assert emu.control_port is None and emu.control_url == f"{emu.url}/emulator/v1"
        rule = _add(emu.control_url, {"action": {"kind": "refuse", "duration_s": WINDOW_S}})
        wait_for(poller.failing, what="the outage")
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"{emu.control_url}/faults", timeout=2)
        wait_for(lambda: not poller.failing(), what="recovery")
        assert _rule(emu.control_url, rule["id"])["fired"] == 1
        t_back = time.monotonic()
        wait_for(lambda: poller.answered_since(t_back, 10), what="ten reads after it")
        assert requests.delete(f"{emu.control_url}/faults/{rule['id']}", timeout=5).ok
        assert poller.outages() == 1


def test_the_proxy_control_port_stays_up_during_an_outage():
    with Emulator(CONFIG) as upstream, Proxy(upstream.address, control_port=0) as prox, Poller(prox.address) as poller:
        rule = _add(prox.control_url, {"action": {"kind": "down", "duration_s": WINDOW_S}, "trigger": {"every": 3}})
        wait_for(poller.failing, what="the outage through the proxy")
        assert _refused(prox.port)
        assert requests.delete(f"{prox.control_url}/faults/{rule['id']}", timeout=5).ok
        wait_for(lambda: not poller.failing(), what="recovery")
        t_back = time.monotonic()
        wait_for(lambda: poller.answered_since(t_back, 10), what="ten reads after it")
        assert poller.outages() == 1


def test_the_control_port_serves_the_control_api_only_and_keeps_its_token():
    with Emulator(CONFIG, control_port=0, control_token="s3cret") as emu:
        url = f"http://127.0.0.1:{emu.control_port}"
        assert emu.control_url == f"{url}/emulator/v1"
        assert requests.get(f"{url}/emulator/v1/faults", timeout=5).status_code == 401
        auth = {"Authorization": "Bearer s3cret"}
        assert requests.get(f"{url}/emulator/v1/faults", headers=auth, timeout=5).json() == []
        device = requests.get(f"{url}/api/v1/telescope/0/name", timeout=5)
        assert device.status_code == 404 and "control API only" in device.json()["error"]
        # a rule that matches everything never reaches it
        emu.faults.add(action={"kind": "http_status", "status": 503})
        assert requests.get(f"{emu.url}/api/v1/telescope/0/name", timeout=5).status_code == 503
        assert len(requests.get(f"{url}/emulator/v1/faults", headers=auth, timeout=5).json()) == 1
        assert emu.traffic.count() == 1  # the control port is not logged


def test_control_port_from_the_config_and_a_bad_one():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    with Emulator({**CONFIG, "emulator": {"control_port": free}}) as emu:
        assert emu.control_port == free
    with pytest.raises(Exception, match="control_port"):
        Emulator({**CONFIG, "emulator": {"control_port": 70000}})
    with pytest.raises(ValueError, match="control_port"):
        Emulator(CONFIG, control_port=-2)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError, match=f"control port {taken.getsockname()[1]}"):
            Emulator(CONFIG, control_port=taken.getsockname()[1]).start()


def test_https_control_port():
    with Emulator(CONFIG, control_port=0, https=True) as emu:
        assert emu.control_url.startswith("https://")
        assert requests.get(f"{emu.control_url}/faults", verify=str(emu.cert_path), timeout=5).json() == []


def test_the_command_lines_print_the_control_port():
    proc = spawn("--port", "0", "--no-discovery")
    try:
        url = read_until(proc, r"control API on (http://127\.0\.0\.1:(\d+)/emulator/v1) \(its own port").group(1)
        assert requests.get(f"{url}/faults", timeout=5).json() == []
        read_until(proc, r"control API on http://127\.0\.0\.1:\d+/emulator/v1 \(also")
    finally:
        code, _, err = stop(proc)
    assert code == 0, err
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy.cli", "--upstream", "127.0.0.1:9", "--port", "0", "--no-discovery", "--control-port", "-1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, cwd=REPO,
    )
    try:
        line = read_until(proc, r"control API on .*").group(0)
        assert "own port" not in line and "also" not in line
        panel = read_until(proc, r"web panel on (http://127\.0\.0\.1:\d+/)").group(1)  # the upstream is down: no devices
        assert "No devices." in requests.get(panel, timeout=5).text
    finally:
        code, _, err = stop(proc)
    assert code == 0, err
