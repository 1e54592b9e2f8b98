"""``alpaca-emulator`` as a real subprocess: it serves, answers alpyca, stops on SIGTERM, rejects bad input."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from alpaca import management
from alpaca.safetymonitor import SafetyMonitor

START_DEADLINE = 30.0
STOP_DEADLINE = 15.0
REPO = Path(__file__).resolve().parents[1]


def spawn(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "emulator.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,  # unbuffered, so lines we do not read are left for communicate()
        cwd=REPO,
        env=env,
    )


def wait_for_url(proc: subprocess.Popen) -> str:
    """The URL of ``listening on http://HOST:PORT`` on stdout, read within a deadline."""
    return read_until(proc, r"listening on (http://127\.0\.0\.1:(\d+))").group(1)


def read_until(proc: subprocess.Popen, pattern: str) -> re.Match:
    """Read stdout line by line until ``pattern`` matches, within a deadline."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + START_DEADLINE
    seen = []
    try:
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            line = proc.stdout.readline().decode()
            if not line:  # EOF: the process ended
                break
            seen.append(line)
            m = re.search(pattern, line)
            if m:
                return m
    finally:
        sel.close()
    proc.kill()
    out, err = proc.communicate(timeout=STOP_DEADLINE)
    raise AssertionError(f"no line matching {pattern!r}; stdout={''.join(seen) + out.decode()!r} stderr={err.decode()!r}")


def stop(proc: subprocess.Popen) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=STOP_DEADLINE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=STOP_DEADLINE)
        raise AssertionError("alpaca-emulator did not exit within the deadline after SIGTERM") from None
    return proc.returncode, out.decode(), err.decode()


def run_to_end(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "emulator.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=STOP_DEADLINE * 2
    )


def test_serves_answers_alpyca_and_stops_on_sigterm():
    proc = spawn("--port", "0", "--no-discovery")
    try:
        url = wait_for_url(proc)
        address = url.removeprefix("http://")
        assert not address.endswith(":0")
        sm = SafetyMonitor(address, 0)
        sm.Connected = True
        assert sm.Connected is True
        assert sm.IsSafe is True
        assert management.apiversions(address) == [1]
    finally:
        code, out, err = stop(proc)
    assert code == 0, err
    assert "stopped" in out
    assert "Traceback" not in err


def test_config_file_is_served(tmp_path):
    cfg = tmp_path / "two.toml"
    cfg.write_text('[[devices]]\ntype = "focuser"\nnumber = 0\n\n[[devices]]\ntype = "focuser"\nnumber = 3\nname = "Guide focuser"\n')
    proc = spawn("--port", "0", "--no-discovery", "--config", str(cfg), "--time-scale", "10")
    try:
        address = wait_for_url(proc).removeprefix("http://")
        devices = management.configureddevices(address)
        assert sorted((d["DeviceType"], d["DeviceNumber"]) for d in devices) == [("Focuser", 0), ("Focuser", 3)]
        assert {d["DeviceName"] for d in devices} >= {"Guide focuser"}
    finally:
        code, _, err = stop(proc)
    assert code == 0, err


def test_discovery_port_zero_is_announced():
    proc = spawn("--port", "0", "--discovery-port", "0")
    try:
        wait_for_url(proc)
        port = int(read_until(proc, r"discovery on udp://127\.0\.0\.1:(\d+)").group(1))
        assert port > 0
    finally:
        code, out, err = stop(proc)
    assert code == 0, err


def test_bad_config_names_file_key_and_problem(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[[devices]]\ntype = "focuser"\nmax_step = "lots"\n')
    result = run_to_end("--port", "0", "--no-discovery", "--config", str(cfg))
    assert result.returncode != 0
    assert str(cfg) in result.stderr
    assert "devices[0].max_step" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_key_in_config(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[emulator]\ntime_scal = 3\n')
    result = run_to_end("--port", "0", "--no-discovery", "--config", str(cfg))
    assert result.returncode != 0
    assert str(cfg) in result.stderr and "emulator.time_scal" in result.stderr and "unknown key" in result.stderr


def test_unreadable_and_invalid_toml(tmp_path):
    missing = tmp_path / "missing.toml"
    result = run_to_end("--port", "0", "--no-discovery", "--config", str(missing))
    assert result.returncode != 0 and str(missing) in result.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("[[devices]\ntype = \n")
    result = run_to_end("--port", "0", "--no-discovery", "--config", str(broken))
    assert result.returncode != 0 and str(broken) in result.stderr and "TOML" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--time-scale", "0"], "--time-scale"),
        (["--time-scale", "-2"], "--time-scale"),
        (["--time-scale", "fast"], "--time-scale"),
        (["--port", "70000"], "--port"),
        (["--port", "-1"], "--port"),
        (["--threads", "0"], "--threads"),
    ],
)
def test_bad_arguments_rejected(args, fragment):
    result = run_to_end("--no-discovery", *args)
    assert result.returncode != 0
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_a_clear_error():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = run_to_end("--port", str(port), "--no-discovery")
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_says_what_it_serves_at_start_and_what_it_saw_at_the_end():
    """The start-up lines list every device with its URL; SIGINT (Ctrl-C) ends with one line on
    the traffic: how many requests, by outcome, and how many a fault rule acted on."""
    proc = spawn("--port", "0", "--no-discovery", "--control-port", "-1")
    try:
        url = wait_for_url(proc)
        header = read_until(proc, r"serving (\d+) devices:")
        assert int(header.group(1)) == 10
        listed = [read_until(proc, r"^  (\w+) (\d+) .*(http://\S+)$") for _ in range(10)]
        assert {(m.group(1), m.group(3)) for m in listed} >= {("camera", f"{url}/api/v1/camera/0"), ("telescope", f"{url}/api/v1/telescope/0")}
        sm = SafetyMonitor(url.removeprefix("http://"), 0)
        for _ in range(3):
            sm.Connected  # noqa: B018 - three answered requests
        requests.post(f"{url}/emulator/v1/faults", json={"match": {"member": "issafe"}, "action": {"kind": "drop"}}, timeout=5).raise_for_status()
        with pytest.raises(Exception):
            sm.IsSafe  # noqa: B018 - one dropped request
        proc.send_signal(signal.SIGINT)
        out, err = (b.decode() for b in proc.communicate(timeout=STOP_DEADLINE))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=STOP_DEADLINE)
    assert proc.returncode == 0, err
    summary = next(line for line in out.splitlines() if line.startswith("traffic: "))
    assert re.fullmatch(r"traffic: 4 requests in \d+s \(3 answered, 1 dropped\); fault rules acted on 1", summary), out
    assert out.splitlines()[-1] == "stopped"
