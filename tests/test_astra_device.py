"""AlpacaDevice with real device processes against a served emulator: calls, IPC failures, stop."""

from __future__ import annotations

import os
import signal
import sqlite3
import statistics
import threading
import time

import pytest

from astra import recorder
from astra.alpaca_device_process import AlpacaDevice, AlpacaDeviceIPCError, RemoteDeviceError
from astra.server import DeviceServer
from emulator import Emulator
from support import wait_until
from test_astra_support import (  # noqa: F401 - the module-level leak check is a fixture
    STARTED_PIDS,
    closed_port,
    no_device_process_left,
    process_gone,
    running_device,
)


@pytest.mark.parametrize("start_method", ["spawn", "fork", "forkserver"])
def test_works_under_each_start_method(start_method):
    with Emulator() as emu, running_device(emu.address, "Focuser", start_method=start_method) as (dev, col):
        assert dev.get("Connected") is True  # connectable=True connected it
        assert emu.device("focuser").connected
        assert isinstance(dev.get("Position"), int)
        assert dev.get("Name") == "Rehearsal Focuser 0"
        dev.get("Move", Position=1000)  # a method with arguments
        dev.get("Halt")()  # get of a method without arguments hands back a callable; calling it calls
        assert dev.set("TempComp", False) is None
        assert dev.get("TempComp") is False
        assert dev.poll_latest() is None  # nothing polled yet
        pid = dev.pid
    assert process_gone(pid)


def test_connectable_uses_platform7_connect():
    with Emulator() as emu, running_device(emu.address, "SafetyMonitor") as (dev, col):
        assert dev.get("IsSafe") is True
        assert emu.traffic.count(device_type="safetymonitor", member="connect", verb="PUT") == 1
        assert any("connected to" in text for text in col.logs("info")) or wait_until(
            lambda: any("connected to" in t for t in col.logs("info")), 5
        )


def test_connectable_false_makes_no_request():
    with Emulator() as emu, running_device(emu.address, "Focuser", connectable=False) as (dev, col):
        assert dev.poll_list() == []  # the process is up and answering
        assert emu.traffic.count(device_type="focuser") == 0
        with pytest.raises(RemoteDeviceError) as info:
            dev.get("Position")
        assert (info.value.cause, info.value.error_number, info.value.error_name) == ("ascom", 0x407, "NotConnectedException")
        assert info.value.ambiguous is False


def test_connect_failure_reaches_queue_and_first_caller_only():
    address = f"127.0.0.1:{closed_port()}"
    with running_device(address, "SafetyMonitor", retry={"tries": 2, "backoff_s": 0.01}) as (dev, col):
        with pytest.raises(RemoteDeviceError, match="initial connect failed") as first:
            dev.get("IsSafe")
        assert first.value.cause == "refused" and first.value.ambiguous is False
        assert wait_until(lambda: any("initial connect failed" in t for t in col.logs("error")), 5)
        with pytest.raises(RemoteDeviceError) as second:
            dev.get("IsSafe")
        assert second.value.cause == "refused" and "initial connect" not in str(second.value)
        assert second.value.attempts == 2  # a refused read is retried


def test_invalid_value_reaches_the_server_exactly_once():
    with Emulator() as emu, running_device(emu.address, "Focuser") as (dev, col):
        with pytest.raises(RemoteDeviceError) as info:
            dev.get("Move", Position=10_000_000)
        err = info.value
        assert (err.cause, err.error_number, err.error_name) == ("ascom", 0x401, "InvalidValueException")
        assert err.ambiguous is False and err.attempts == 1
        assert err.remote_type == "InvalidValueException" and err.remote_message
        assert err.method == "Move" and err.device_name == "test-Focuser"
        assert "Traceback" in str(err.__cause__)  # the device process's traceback, as text
        assert emu.traffic.count(device_type="focuser", member="move", verb="PUT") == 1


def test_unknown_member_is_a_clear_remote_error_without_traffic():
    with Emulator() as emu, running_device(emu.address, "Focuser") as (dev, col):
        dev.get("Name")  # connected: no more traffic of its own
        before = emu.traffic.count(device_type="focuser")
        with pytest.raises(RemoteDeviceError, match="no member 'Warp'") as info:
            dev.get("Warp")
        assert info.value.cause == "other" and info.value.ambiguous is False
        assert emu.traffic.count(device_type="focuser") == before


def test_unpicklable_arguments_are_a_typeerror_and_the_channel_survives():
    with Emulator() as emu, running_device(emu.address, "Focuser") as (dev, col):
        with pytest.raises(TypeError, match="cannot be sent"):
            dev.get("Move", Position=lambda: 1)
        assert dev.get("Name") == "Rehearsal Focuser 0"


def test_eight_threads_of_200_gets_each_get_their_own_answer():
    members = ["Name", "Description", "DriverInfo", "DriverVersion", "InterfaceVersion", "Connected", "SupportedActions", "Connecting"]
    with Emulator() as emu, running_device(emu.address, "SafetyMonitor", workers=4) as (dev, col):
        expected = {m: dev.get(m) for m in members}
        assert len({repr(v) for v in expected.values()}) == len(members)  # every answer tells its member apart
        wrong: list[tuple[str, object]] = []
        errors: list[BaseException] = []

        def worker(member: str) -> None:
            try:
                for _ in range(200):
                    value = dev.get(member)
                    if value != expected[member] or type(value) is not type(expected[member]):
                        wrong.append((member, value))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(m,)) for m in members]
        for t in threads:
            t.start()
        for t in threads:
            t.join(50)
        assert not any(t.is_alive() for t in threads)
        assert not errors, errors[:3]
        assert not wrong, wrong[:5]


def test_sigkill_during_a_call_fails_it_within_a_second():
    with Emulator() as emu, running_device(emu.address, "Focuser", call_timeout=30) as (dev, col):
        dev.get("Name")
        rule = emu.faults.add({"match": {"device_type": "focuser", "member": "position"}, "action": {"kind": "latency", "ms": 20000}})
        outcome: dict[str, object] = {}

        def call() -> None:
            try:
                dev.get("Position")
            except BaseException as exc:
                outcome["error"] = exc
            outcome["at"] = time.monotonic()

        t = threading.Thread(target=call)
        t.start()
        assert wait_until(lambda: rule.fired == 1, 5)  # the call is in flight, held by the server
        killed_at = time.monotonic()
        os.kill(dev.pid, signal.SIGKILL)
        t.join(10)
        assert not t.is_alive()
        err = outcome["error"]
        assert isinstance(err, AlpacaDeviceIPCError) and err.reason == "dead"
        assert "-9" in str(err)
        assert outcome["at"] - killed_at < 1.0
        with pytest.raises(AlpacaDeviceIPCError) as later:  # and every later call, at once
            dev.get("Name")
        assert later.value.reason == "dead"


def test_sigstop_honours_the_deadline_and_stop_escalates():
    with Emulator() as emu, running_device(emu.address, "Focuser", stop_timeout=0.5) as (dev, col):
        dev.get("Name")
        os.kill(dev.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            with pytest.raises(AlpacaDeviceIPCError) as info:
                dev.call("Position", timeout=0.5)
            elapsed = time.monotonic() - t0
            assert info.value.reason == "timeout"
            assert 0.45 <= elapsed < 5.0, f"deadline 0.5 s, failed after {elapsed:.2f} s"
            t0 = time.monotonic()
            dev.stop(timeout=0.5)  # asks, waits 0.5 s, terminates (pending while stopped), kills
            assert time.monotonic() - t0 < 10.0, "stop() did not escalate"
            assert dev.exitcode == -signal.SIGKILL, f"exit code {dev.exitcode}"
        finally:
            if dev.is_alive():
                os.kill(dev.pid, signal.SIGKILL)


def test_sigstop_deadline_holds_for_a_request_bigger_than_the_pipe():
    """A request larger than the socket buffer must not block the caller on a stopped child."""
    with Emulator() as emu, running_device(emu.address, "Focuser", stop_timeout=2) as (dev, col):
        dev.get("Name")
        os.kill(dev.pid, signal.SIGSTOP)
        box: dict[str, object] = {}

        def call() -> None:
            t0 = time.monotonic()
            box["error"] = _swallow(lambda: dev.call("Move", {"Position": "x" * 4_000_000}, timeout=0.5))
            box["elapsed"] = time.monotonic() - t0

        t = threading.Thread(target=call)
        try:
            t.start()
            t.join(5)
            assert not t.is_alive(), "the call blocked past its deadline while sending"
            err = box["error"]
            assert isinstance(err, AlpacaDeviceIPCError) and err.reason == "timeout", err
            assert box["elapsed"] < 5.0
        finally:
            os.kill(dev.pid, signal.SIGCONT)
            if t.is_alive():
                os.kill(dev.pid, signal.SIGKILL)
                t.join(5)
        # Resumed: the rest of the cut-off request goes first, the child skips it (deadline passed),
        # and the channel still works.
        assert dev.call("Name", timeout=10) == "Rehearsal Focuser 0"
        assert wait_until(lambda: any("skipped call Move" in t for t in col.logs("warning")), 5)
        assert emu.traffic.count(device_type="focuser", member="move") == 0


def test_a_call_whose_caller_gave_up_never_reaches_the_device():
    """A method queued behind a slow call and timed out meanwhile must not be run later."""
    with Emulator() as emu, running_device(emu.address, "Focuser", workers=1) as (dev, col):
        dev.get("Name")
        rule = emu.faults.add({"match": {"device_type": "focuser", "member": "description"},
                               "action": {"kind": "latency", "ms": 1500}, "trigger": {"count": 1}})
        box: dict[str, object] = {}
        t = threading.Thread(target=lambda: box.setdefault("r", _swallow(lambda: dev.call("Description", timeout=10))))
        t.start()
        try:
            assert wait_until(lambda: rule.fired == 1, 5)  # the only call thread is busy
            with pytest.raises(AlpacaDeviceIPCError) as info:
                dev.call("Move", {"Position": 1234}, timeout=0.3)
            assert info.value.reason == "timeout"
        finally:
            t.join(10)
        assert isinstance(box["r"], str)
        assert wait_until(lambda: any("skipped call Move" in t for t in col.logs("warning")), 5)
        assert dev.get("Name") == "Rehearsal Focuser 0"
        assert emu.traffic.count(device_type="focuser", member="move") == 0


def test_sigkill_is_seen_when_a_sibling_fork_child_holds_the_pipe():
    """Under fork, a device started first inherits the second one's pipe ends, so the second
    one's death brings no EOF: the process sentinel must still fail its call within 1 s."""
    with Emulator() as emu:
        a = AlpacaDevice(emu.address, "SafetyMonitor", 0, "a", None, start_method="fork", call_timeout=10, http_timeout=2)
        b = AlpacaDevice(emu.address, "Focuser", 0, "b", None, start_method="fork", call_timeout=10, http_timeout=2)
        try:
            a.start()
            STARTED_PIDS.append(a.pid)
            b.start()
            STARTED_PIDS.append(b.pid)
            assert b.get("Name") == "Rehearsal Focuser 0" and a.get("IsSafe") is True
            rule = emu.faults.add({"match": {"device_type": "focuser", "member": "position"},
                                   "action": {"kind": "latency", "ms": 20000}})
            box: dict[str, object] = {}

            def call() -> None:
                box["error"] = _swallow(lambda: b.get("Position"))
                box["at"] = time.monotonic()

            t = threading.Thread(target=call)
            t.start()
            assert wait_until(lambda: rule.fired == 1, 5)
            killed_at = time.monotonic()
            os.kill(b.pid, signal.SIGKILL)
            t.join(15)
            assert not t.is_alive()
            err = box["error"]
            assert isinstance(err, AlpacaDeviceIPCError) and err.reason == "dead", err
            assert box["at"] - killed_at < 1.0
            assert a.get("IsSafe") is True  # the sibling is unaffected
        finally:
            b.stop(timeout=2)
            a.stop(timeout=2)


def test_late_reply_never_reaches_the_next_call():
    with Emulator() as emu, running_device(emu.address, "Focuser") as (dev, col):
        dev.get("Name")
        emu.faults.add({"match": {"device_type": "focuser", "member": "description"}, "action": {"kind": "latency", "ms": 1500},
                        "trigger": {"count": 1}})
        with pytest.raises(AlpacaDeviceIPCError) as info:
            dev.call("Description", timeout=0.3)
        assert info.value.reason == "timeout"
        # The next call waits behind the slow one in the device process; it must get its own answer.
        assert dev.call("Name", timeout=10) == "Rehearsal Focuser 0"
        assert dev.get("DriverVersion") != dev.get("Description")
        assert wait_until(lambda: dev._channel.late_replies >= 1, 5)


def test_poll_latest_answers_at_once_while_a_long_call_holds_the_device():
    with Emulator() as emu, running_device(emu.address, "SafetyMonitor", stop_timeout=2) as (dev, col):
        dev.start_poll("IsSafe", 0.05)
        assert wait_until(lambda: dev.poll_latest(), 5)
        emu.faults.add({"match": {"device_type": "safetymonitor", "member": "description"}, "action": {"kind": "latency", "ms": 30000}})
        box: dict[str, object] = {}
        t = threading.Thread(target=lambda: box.setdefault("r", _swallow(lambda: dev.get("Description"))))
        t.start()
        try:
            time.sleep(0.3)  # the 30 s call is in flight
            times = []
            for _ in range(200):
                t0 = time.perf_counter()
                latest = dev.poll_latest()
                times.append(time.perf_counter() - t0)
            assert latest is not None and latest["IsSafe"]["value"] is True
            # It never waits for the 30 s call: judged by the median (a local read) and by a worst
            # case far below the call, so a loaded machine's scheduling stall cannot fail it.
            assert statistics.median(times) < 0.005 and max(times) < 1.0, (statistics.median(times), max(times))
        finally:
            # ends the in-flight call too; 5 s leaves a loaded machine room, and is far below the
            # 30 s a child that waited for its HTTP call would need (stop would then kill it)
            dev.stop(timeout=5)
            t.join(10)
        assert isinstance(box["r"], AlpacaDeviceIPCError) and box["r"].reason == "stopped"
        # the child exits at once and cleanly although a pool thread is still in its HTTP call,
        # and what it logged on the way out reaches the queue
        assert dev.exitcode == 0
        assert wait_until(lambda: any("device process stopping" in t for t in col.logs("info")), 5)


def _swallow(fn):
    try:
        return fn()
    except BaseException as exc:
        return exc


def test_stop_is_clean_and_final():
    with Emulator() as emu, running_device(emu.address, "SafetyMonitor") as (dev, col):
        dev.start_poll("IsSafe", 0.1)
        assert wait_until(lambda: dev.poll_latest(), 5)
        dev.stop()
        assert dev.exitcode == 0
        assert dev.front_pipe.closed and dev.back_pipe.closed
        assert dev.poll_latest()["IsSafe"]["value"] is True  # the cache outlives the process
        with pytest.raises(AlpacaDeviceIPCError) as info:
            dev.get("IsSafe")
        assert info.value.reason == "stopped"
        with pytest.raises(AlpacaDeviceIPCError):
            dev.set("Connected", False)
        dev.stop()  # again: harmless
        assert wait_until(lambda: any("device process stopping" in t for t in col.logs("info")), 5)


def test_sigterm_stops_the_child_cleanly_and_sigint_is_ignored():
    with Emulator() as emu, running_device(emu.address, "SafetyMonitor") as (dev, col):
        dev.get("IsSafe")
        with open(f"/proc/{dev.pid}/status") as f:  # ignored, not merely slow to act on
            ignored = int(f.read().split("SigIgn:")[1].split()[0], 16)
        assert ignored & (1 << (signal.SIGINT - 1)), "the device process does not ignore SIGINT"
        os.kill(dev.pid, signal.SIGINT)  # Ctrl-C belongs to the caller
        time.sleep(0.2)
        assert dev.is_alive() and dev.get("IsSafe") is True
        dev.terminate()
        dev.join(5)
        assert dev.exitcode == 0
        with pytest.raises(AlpacaDeviceIPCError) as info:
            dev.get("IsSafe")
        assert info.value.reason == "dead"


def test_many_devices_in_one_caller_stay_apart():
    with Emulator() as emu:
        with running_device(emu.address, "SafetyMonitor", name="wx") as (a, _), running_device(
            emu.address, "Focuser", name="focus"
        ) as (b, _):
            assert a.get("Name") == "Rehearsal SafetyMonitor 0"
            assert b.get("Name") == "Rehearsal Focuser 0"
            assert a.pid != b.pid


def test_manager_queue_and_recorder_end_to_end(tmp_path):
    description = "it's \"quoted\"\nsecond line; DROP TABLE polling; -- ünïcødé ✓"
    cfg = {"devices": [{"type": "safetymonitor", "description": description}]}
    import multiprocessing

    with Emulator(cfg) as emu, multiprocessing.get_context("spawn").Manager() as manager:
        q = manager.Queue()
        dev = AlpacaDevice(emu.address, "SafetyMonitor", 0, "wx 'north'", q, start_method="spawn", retry={"tries": 1})
        dev.start()
        try:
            assert dev.force_poll("Description") == description
            latest = dev.poll_latest()
            assert latest["Description"]["value"] == description
            assert latest["Description"]["datetime"].tzinfo is not None
        finally:
            dev.stop()
        messages = []
        while not q.empty():
            messages.append(q.get(timeout=1))
        queries = [p for _, p in messages if p["type"] == "query"]
        assert len(queries) == 1
        (meta, _), query = messages[0], queries[0]
        assert meta == {"ip": emu.address, "device_type": "SafetyMonitor", "device_number": 0, "device_name": "wx 'north'"}
        assert query["value"] == description and query["method"] == "Description"
        # The SQL text, executed as the original consumers do, stores the value exactly...
        conn = recorder.connect(":memory:")
        conn.execute(query["data"])
        assert conn.execute("SELECT device_name, device_command, device_value FROM polling").fetchall() == [
            ("wx 'north'", "Description", description)
        ]
        conn.close()
        # ...and the recorder stores the structured form with bound parameters.
        db = tmp_path / "rec.sqlite"
        rconn = recorder.connect(db)
        for m in messages:
            recorder.record(rconn, m)
        rconn.commit()
        rconn.close()
        rows = sqlite3.connect(db).execute("SELECT device_value FROM polling").fetchall()
        assert rows == [(description,)]


class _OddServer(DeviceServer):
    """Its device object raises an exception class that cannot be pickled, and returns an unpicklable value."""

    def make_device(self):
        class WeirdError(Exception):  # local class: pickle cannot find it
            pass

        class Fake:
            @property
            def Temperature(self):
                raise WeirdError("sensor on fire")

            @property
            def Name(self):
                return "odd"

            def Lambda(self):
                return lambda: 1

        return Fake()


class _OddDevice(AlpacaDevice):
    server_class = _OddServer


def test_unpicklable_exceptions_and_values_cross_as_text():
    import multiprocessing

    q = multiprocessing.get_context("fork").Queue()
    dev = _OddDevice("127.0.0.1:1", "Focuser", 0, "odd", q, connectable=False, start_method="fork", call_timeout=10)
    dev.start()
    try:
        with pytest.raises(RemoteDeviceError) as info:
            dev.get("Temperature")
        assert (info.value.remote_type, info.value.remote_message) == ("WeirdError", "sensor on fire")
        assert "WeirdError" in str(info.value.__cause__)  # the child's traceback text
        with pytest.raises(RemoteDeviceError, match="cannot be pickled"):
            dev.get("Lambda")()  # get hands back the method; calling it returns the unpicklable value
        assert dev.get("Name") == "odd"  # the channel is intact
    finally:
        dev.stop()
        q.close()
        q.join_thread()
    assert dev.exitcode == 0


ORPHAN_SCRIPT = """
import multiprocessing, os, sys
from astra.alpaca_device_process import AlpacaDevice
if __name__ == "__main__":
    q = multiprocessing.get_context("spawn").Queue()
    d = AlpacaDevice("127.0.0.1:1", "SafetyMonitor", 0, "orphan", q, connectable=False, start_method="spawn")
    d.start()
    d.poll_list()
    print(d.pid, flush=True)
    os._exit(0)  # the caller dies without stopping its device
"""


def test_device_process_exits_when_its_caller_dies(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "orphan.py"
    script.write_text(ORPHAN_SCRIPT)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30)
    pid = int(out.stdout.strip())

    def gone() -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # exited; reaping is init's business
        except FileNotFoundError:
            return True

    assert wait_until(gone, 10), f"orphaned device process {pid} is still running"


def test_exit_code_is_never_lost_to_the_reader_thread():
    """forkserver reports the exit code through a pipe: the reader thread and join() must not both read it."""
    import multiprocessing

    ctx = multiprocessing.get_context("forkserver")
    codes = []
    for _ in range(10):
        q = ctx.Queue()
        dev = AlpacaDevice("127.0.0.1:1", "Focuser", 0, "f", q, connectable=False, start_method="forkserver")
        dev.start()
        try:
            dev.poll_list()
            os.kill(dev.pid, signal.SIGKILL)
            dev.join(5)
            codes.append(dev.exitcode)
        finally:
            dev.stop()
            q.close()
            q.join_thread()
    assert codes == [-signal.SIGKILL] * 10


@pytest.mark.parametrize("start_method", ["spawn", "fork", "forkserver"])
def test_stop_leaves_no_fd_and_no_thread_behind(start_method):
    """The pipe ends, the owner thread, its wake-up pipe and the send socket all go with stop()."""

    def fds() -> set[str]:
        return set(os.listdir("/proc/self/fd"))

    def run_one(poll: bool) -> None:
        dev = AlpacaDevice(emu.address, "Focuser", 0, "fds", None, start_method=start_method, call_timeout=10, http_timeout=2)
        dev.start()
        STARTED_PIDS.append(dev.pid)
        try:
            dev.get("Name")
            if poll:
                dev.start_poll("Position", 0.05)
                assert wait_until(lambda: dev.poll_latest(), 5)
                assert any(t.name.startswith("astra-owner") for t in threading.enumerate())
        finally:
            dev.stop()
        assert dev.exitcode == 0
        dev.close()  # multiprocessing's own fds (the process sentinel) go here, not in stop()

    with Emulator() as emu:
        run_one(False)  # warm-up: the forkserver and its pipes stay for the session
        before, threads = fds(), set(threading.enumerate())
        run_one(True)
        assert fds() <= before, f"fds left behind: {sorted(fds() - before)}"
        assert wait_until(lambda: set(threading.enumerate()) <= threads, 5), \
            f"threads left behind: {[t.name for t in set(threading.enumerate()) - threads]}"
