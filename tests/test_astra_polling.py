"""AlpacaDevice polling against a served emulator: rate, one thread per member, stop, pause, staleness."""

from __future__ import annotations

import threading
import time

from emulator import Emulator
from support import wait_until
from test_astra_support import (  # noqa: F401 - the module-level leak check is a fixture
    child_cpu_seconds,
    no_device_process_left,
    running_device,
)


def _issafe_count(emu: Emulator) -> int:
    return emu.traffic.count(device_type="safetymonitor", member="issafe", verb="GET")


def test_interval_holds_at_10_hz():
    with Emulator() as emu, running_device(emu.address, "SafetyMonitor") as (dev, col):
        dev.start_poll("IsSafe", 0.1)
        assert wait_until(lambda: len(col.payloads("query")) >= 21, 10)
        stamps = [p["datetime"] for p in col.payloads("query")][:21]
        # the median interval: one read delayed by a loaded machine makes one long and one short
        # interval, which must not decide the verdict; a wrong period moves every interval
        gaps = sorted((b - a).total_seconds() for a, b in zip(stamps, stamps[1:]))
        median = gaps[len(gaps) // 2]
        assert abs(median - 0.1) <= 0.01, f"median interval {median:.4f} s, intervals {gaps}"
        assert all(p["method"] == "IsSafe" and p["value"] is True and p["device_value"] == "True" for p in col.payloads("query"))
        assert "INSERT INTO polling" in col.payloads("query")[0]["data"]


def test_interval_holds_when_each_read_takes_half_of_it():
    """Fixed rate: a 50 ms read does not stretch a 100 ms interval to 150 ms."""
    with Emulator() as emu, running_device(emu.address, "SafetyMonitor") as (dev, col):
        emu.faults.add({"match": {"device_type": "safetymonitor", "member": "issafe"}, "action": {"kind": "latency", "ms": 50}})
        dev.start_poll("IsSafe", 0.1)
        assert wait_until(lambda: len(col.payloads("query")) >= 21, 15)
        stamps = [p["datetime"] for p in col.payloads("query")][:21]
        mean = (stamps[-1] - stamps[0]).total_seconds() / 20
        assert 0.085 <= mean <= 0.125, f"mean interval {mean:.4f} s with 50 ms reads"


def test_exactly_one_poller_per_member():
    with Emulator() as emu, running_device(emu.address, "SafetyMonitor") as (dev, col):
        dev.get("Name")
        barrier = threading.Barrier(4)

        def start() -> None:
            barrier.wait(5)
            dev.start_poll("IsSafe", 0.2)

        threads = [threading.Thread(target=start) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert dev.poll_list() == ["IsSafe"]
        first = _issafe_count(emu)
        time.sleep(1.0)
        polls = _issafe_count(emu) - first
        assert 3 <= polls <= 7, f"{polls} polls in 1 s at 5 Hz: more than one poller?"


def test_stop_poll_stops_the_traffic_at_once():
    with Emulator() as emu, running_device(emu.address, "SafetyMonitor") as (dev, col):
        dev.start_poll("IsSafe", 0.05)
        dev.start_poll("Connected", 0.05)
        assert wait_until(lambda: _issafe_count(emu) >= 3, 5)
        dev.stop_poll("IsSafe")
        assert dev.poll_list() == ["Connected"]
        after = _issafe_count(emu)
        time.sleep(0.4)
        assert _issafe_count(emu) == after
        connected = emu.traffic.count(device_type="safetymonitor", member="connected", verb="GET")
        assert wait_until(lambda: emu.traffic.count(device_type="safetymonitor", member="connected", verb="GET") > connected, 5)
        dev.stop_poll()
        assert dev.poll_list() == []
        total = emu.traffic.count(device_type="safetymonitor")
        time.sleep(0.4)
        assert emu.traffic.count(device_type="safetymonitor") == total
        dev.stop_poll("IsSafe")  # not polled: harmless


def test_a_second_start_poll_changes_the_interval():
    with Emulator() as emu, running_device(emu.address, "SafetyMonitor") as (dev, col):
        dev.start_poll("IsSafe", 5.0)
        assert wait_until(lambda: _issafe_count(emu) >= 1, 5)
        dev.start_poll("IsSafe", 0.05)
        assert wait_until(lambda: _issafe_count(emu) >= 6, 5)
        assert dev.poll_list() == ["IsSafe"]


def test_pause_and_resume_without_busy_waiting():
    with Emulator() as emu, running_device(emu.address, "SafetyMonitor") as (dev, col):
        dev.start_poll("IsSafe", 0.02)
        dev.start_poll("Connected", 0.02)
        assert wait_until(lambda: _issafe_count(emu) >= 3, 5)
        dev.pause_polls()
        time.sleep(0.1)  # a read in flight at the pause may still land
        paused_at = _issafe_count(emu)
        cpu0 = child_cpu_seconds(dev.pid)
        time.sleep(1.0)
        assert _issafe_count(emu) == paused_at
        assert child_cpu_seconds(dev.pid) - cpu0 < 0.2  # paused pollers sleep
        assert sorted(dev.poll_list()) == ["Connected", "IsSafe"]
        dev.resume_polls()
        assert wait_until(lambda: _issafe_count(emu) >= paused_at + 3, 5)


def test_poll_latest_keeps_the_last_good_value_and_adds_the_error():
    with Emulator() as emu, running_device(emu.address, "SafetyMonitor", poll_max_backoff_s=0.3) as (dev, col):
        assert dev.poll_latest() is None
        dev.start_poll("IsSafe", 0.05)
        assert wait_until(lambda: dev.poll_latest(), 5)
        rule = emu.faults.add({"match": {"device_type": "safetymonitor", "member": "issafe"},
                               "action": {"kind": "ascom_error", "number": "0x500", "message": "weather station offline"}})
        assert wait_until(lambda: dev.poll_latest()["IsSafe"]["error"], 5)
        entry = dev.poll_latest()["IsSafe"]
        assert entry["value"] is True  # the last good value, not "null"
        assert "weather station offline" in entry["error"] and entry["error_time"] > entry["datetime"]
        time.sleep(0.5)
        again = dev.poll_latest()["IsSafe"]
        assert again["datetime"] == entry["datetime"]  # a failed poll never refreshes the reading time
        assert again["failures"] >= entry["failures"]
        assert any("poll IsSafe failed" in t for t in col.logs("warning"))
        rule.remove()
        emu.set_state("safetymonitor", IsSafe=False)
        assert wait_until(lambda: dev.poll_latest()["IsSafe"]["error"] is None, 5)
        recovered = dev.poll_latest()["IsSafe"]
        assert recovered["value"] is False and recovered["datetime"] > entry["datetime"]
        assert wait_until(lambda: any("recovered" in t for t in col.logs("info")), 5)
        assert dev.poll_list() == ["IsSafe"]


def test_force_poll_records_like_a_poll():
    with Emulator() as emu, running_device(emu.address, "SafetyMonitor") as (dev, col):
        assert dev.force_poll("IsSafe") is True
        latest = dev.poll_latest()
        assert list(latest) == ["IsSafe"] and latest["IsSafe"]["value"] is True
        assert dev.poll_list() == []  # once, not a poll
        assert wait_until(lambda: len(col.payloads("query")) == 1, 5)
        query = col.payloads("query")[0]
        assert query["method"] == "IsSafe" and query["value"] is True
