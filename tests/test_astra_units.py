"""astra pieces that need no device process: retry rules, error classification, SQL text, get__ on an assigned device."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import pickle
import queue
import sqlite3

import pytest
import requests
from alpaca.exceptions import AlpacaRequestException, DriverException, InvalidValueException, NotConnectedException
from hypothesis import given, settings
from hypothesis import strategies as st

from astra import recorder
from astra.alpaca_device_process import (
    AlpacaDevice,
    AlpacaDeviceError,
    AlpacaDeviceIPCError,
    RemoteDeviceError,
    RetryPolicy,
)
from astra.errors import classify


# -- construction ------------------------------------------------------------------------------------


def test_unknown_device_type_is_a_valueerror_naming_the_valid_types():
    with pytest.raises(ValueError, match="unknown device_type 'Telescop'.*SafetyMonitor.*Telescope"):
        AlpacaDevice("127.0.0.1:1", "Telescop", 0, "t", None)


def test_bad_start_method_and_options_are_rejected():
    with pytest.raises(ValueError, match="start_method"):
        AlpacaDevice("127.0.0.1:1", "Focuser", 0, "f", None, start_method="thread")
    with pytest.raises(ValueError, match="unknown retry option"):
        AlpacaDevice("127.0.0.1:1", "Focuser", 0, "f", None, retry={"triez": 2})
    with pytest.raises(ValueError, match="call_timeout"):
        AlpacaDevice("127.0.0.1:1", "Focuser", 0, "f", None, call_timeout=0)


def test_positional_signature_and_metadata():
    dev = AlpacaDevice("127.0.0.1:1", "safetymonitor", 2, "weather", None, False, True)
    assert dev.metadata == {"ip": "127.0.0.1:1", "device_type": "safetymonitor", "device_number": 2, "device_name": "weather"}
    assert dev.connectable is False and dev.debug is True
    assert dev.device is None
    dev.stop()  # never started: harmless
    with pytest.raises(AlpacaDeviceIPCError) as info:
        dev.get("IsSafe")
    assert info.value.reason == "stopped"


def test_calls_before_start_fail_clearly():
    dev = AlpacaDevice("127.0.0.1:1", "SafetyMonitor", 0, "weather", None)
    with pytest.raises(AlpacaDeviceIPCError, match="start") as info:
        dev.get("IsSafe")
    assert info.value.reason == "closed"
    assert dev.poll_latest() is None
    dev.stop()


# -- retry policy --------------------------------------------------------------------------------------


def test_retry_policy_defaults_and_backoff():
    p = RetryPolicy()
    assert (p.tries, p.backoff_s, p.backoff_factor, p.max_backoff_s) == (3, 0.2, 2.0, 2.0)
    assert [p.delay(n) for n in (1, 2, 3, 4, 5, 6)] == [0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert RetryPolicy.from_value({"tries": 5}).tries == 5
    assert RetryPolicy.from_value(None) == RetryPolicy()
    with pytest.raises(ValueError):
        RetryPolicy(tries=0)


@pytest.mark.parametrize(
    "kind, cause, retried",
    [
        ("read", "refused", True),
        ("read", "timeout", True),
        ("read", "dropped", True),
        ("read", "ascom", False),
        ("read", "http_status", False),
        ("read", "malformed", False),
        ("method", "refused", True),
        ("method", "timeout", False),
        ("method", "dropped", False),
        ("method", "ascom", False),
        ("write", "refused", True),
        ("write", "timeout", False),
        ("write", "dropped", False),
    ],
)
def test_what_is_safe_to_retry(kind, cause, retried):
    p = RetryPolicy(tries=3)
    assert p.should_retry(kind, cause, attempts=1) is retried
    assert p.should_retry(kind, cause, attempts=3) is False  # tries exhausted


# -- classification ------------------------------------------------------------------------------------


def test_ascom_errors_keep_number_and_name():
    info = classify(InvalidValueException("Move - 99999 is out of range"))
    assert info["cause"] == "ascom" and info["error_number"] == 0x401
    assert info["error_name"] == "InvalidValueException" and info["ambiguous"] is False
    assert info["remote_message"] == "Move - 99999 is out of range"
    assert classify(DriverException(0x555, "boom"))["error_number"] == 0x555


def test_http_status_and_network_causes():
    assert classify(AlpacaRequestException(400, "bad"))["cause"] == "http_status"
    assert classify(AlpacaRequestException(400, "bad"))["ambiguous"] is False
    assert classify(AlpacaRequestException(503, "busy"))["ambiguous"] is True
    assert classify(requests.exceptions.ReadTimeout("read timed out"))["cause"] == "timeout"
    assert classify(requests.exceptions.ConnectTimeout("connect timed out"))["cause"] == "refused"
    assert classify(ConnectionRefusedError(111, "refused"))["cause"] == "refused"
    assert classify(ConnectionResetError(104, "reset"))["cause"] == "dropped"
    assert classify(requests.exceptions.ChunkedEncodingError("truncated"))["cause"] == "malformed"


def test_real_refused_connection_is_classified_refused():
    from test_astra_support import closed_port

    with pytest.raises(requests.ConnectionError) as info:
        requests.get(f"http://127.0.0.1:{closed_port()}/", timeout=2)
    c = classify(info.value)
    assert c["cause"] == "refused" and c["ambiguous"] is False


def test_from_device_picks_the_subclass():
    dev = AlpacaDevice("127.0.0.1:1", "Focuser", 0, "focus", None)
    remote = AlpacaDeviceError.from_device(dev, NotConnectedException("not connected"), "get", "Position")
    assert isinstance(remote, RemoteDeviceError)
    assert (remote.cause, remote.error_number, remote.error_name) == ("ascom", 0x407, "NotConnectedException")
    assert remote.device_name == "focus" and remote.method == "Position"
    assert "focus" in str(remote) and "0x407" in str(remote)
    ipc = AlpacaDeviceError.from_device(dev, EOFError(), "get", "Position")
    assert isinstance(ipc, AlpacaDeviceIPCError) and ipc.reason == "broken"
    assert isinstance(ipc.__cause__, EOFError)


def test_errors_survive_pickling():
    err = RemoteDeviceError.from_fields({"cause": "timeout", "ambiguous": True, "method": "Move", "device_name": "f", "attempts": 2})
    back = pickle.loads(pickle.dumps(err))
    assert back.fields() == err.fields() and str(back) == str(err)
    ipc = pickle.loads(pickle.dumps(AlpacaDeviceIPCError("x", reason="dead")))
    assert ipc.reason == "dead"


# -- get__/set__ in the caller's own process on an assigned device --------------------------------------


class FakeDevice:
    """Stands in for an alpyca device: a property, a method with and without arguments, a failing method."""

    def __init__(self) -> None:
        self.moves: list[int] = []
        self._temp = 12.5

    @property
    def Temperature(self) -> float:
        return self._temp

    @Temperature.setter
    def Temperature(self, value: float) -> None:
        self._temp = value

    def Halt(self) -> str:
        return "halted"

    def Move(self, Position: int) -> None:
        if Position < 0:
            raise InvalidValueException(f"Move: {Position} out of range")
        self.moves.append(Position)

    def Broken(self) -> None:
        raise RuntimeError("the driver fell over")


def test_get__direct_returns_status_dicts():
    q: queue.Queue = queue.Queue()
    dev = AlpacaDevice("127.0.0.1:1", "Focuser", 0, "focus", q, retry={"tries": 1})
    dev.device = FakeDevice()
    assert dev.get__("Temperature", pipe=False) == {"status": "success", "data": 12.5}
    assert dev.get__("Halt", pipe=False) == {"status": "success", "data": "halted"}  # called without kwargs
    assert dev.get__("Move", pipe=False, Position=7) == {"status": "success", "data": None}
    assert dev.device.moves == [7]
    bad = dev.get__("Move", pipe=False, Position=-1)
    assert bad["status"] == "error" and "out of range" in bad["message"]
    assert bad["error"]["error_number"] == 0x401
    broken = dev.get__("Broken", pipe=False)  # a failing call fails; it is never returned as the bound method
    assert broken["status"] == "error" and "fell over" in broken["message"]
    missing = dev.get__("Nope", pipe=False)
    assert missing["status"] == "error" and "Nope" in missing["message"]
    assert dev.set__("Temperature", 3.0, pipe=False) == {"status": "success", "data": None}
    assert dev.get__("Temperature", pipe=False)["data"] == 3.0


def test_get__direct_retries_a_refused_read_and_logs_it():
    q: queue.Queue = queue.Queue()
    dev = AlpacaDevice("127.0.0.1:1", "Focuser", 0, "focus", q, retry={"tries": 3, "backoff_s": 0.01})

    class Flaky:
        calls = 0

        @property
        def Position(self) -> int:
            Flaky.calls += 1
            if Flaky.calls < 3:
                raise ConnectionRefusedError(111, "Connection refused")
            return 42

    dev.device = Flaky()
    assert dev.get__("Position", pipe=False) == {"status": "success", "data": 42}
    logs = [q.get_nowait() for _ in range(q.qsize())]
    retries = [p["data"] for _, p in logs if p["type"] == "log" and "retry" in p["data"][1]]
    assert len(retries) == 2 and all(level == "warning" for level, _ in retries)
    assert logs[0][0] == dev.metadata


# -- SQL text and the recorder -------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",))))
def test_sql_text_reads_back_exactly(value):
    conn = recorder.connect(":memory:")
    when = dt.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=dt.timezone.utc)
    conn.execute(recorder.polling_insert_sql("SafetyMonitor", "we'ather\n", "IsSafe", value, when))
    row = conn.execute("SELECT device_type, device_name, device_command, device_value, datetime FROM polling").fetchone()
    assert row == ("SafetyMonitor", "we'ather\n", "IsSafe", value, "2024-01-02 03:04:05.678901")
    assert conn.execute("SELECT count(*) FROM polling").fetchone()[0] == 1  # nothing injected
    conn.close()


def test_injection_attempt_is_stored_as_text():
    conn = recorder.connect(":memory:")
    evil = "x'); DROP TABLE polling; --"
    conn.executescript(recorder.polling_insert_sql("T", "n", "m", evil, dt.datetime.now(dt.timezone.utc)))
    assert conn.execute("SELECT device_value FROM polling").fetchall() == [(evil,)]
    conn.close()


def test_recorder_stores_structured_values_with_bound_parameters(tmp_path):
    q: queue.Queue = queue.Queue()
    meta = {"ip": "h:1", "device_type": "SafetyMonitor", "device_number": 0, "device_name": "wx"}
    when = dt.datetime(2024, 5, 6, 7, 8, 9, 10, tzinfo=dt.timezone.utc)
    q.put((meta, {"type": "query", "data": "DROP TABLE polling", "method": "IsSafe", "value": False, "datetime": when}))
    q.put((meta, {"type": "log", "data": ("warning", "it's raining")}))
    q.put("garbage")
    with recorder.Recorder(tmp_path / "db.sqlite", q) as rec:
        assert wait_for_count(rec, 2)
    conn = sqlite3.connect(tmp_path / "db.sqlite")
    assert conn.execute("SELECT * FROM polling").fetchall() == [("SafetyMonitor", "wx", "IsSafe", "False", "2024-05-06 07:08:09.000010")]
    assert conn.execute("SELECT level, message, device_name FROM log").fetchall() == [("warning", "it's raining", "wx")]
    conn.close()


def wait_for_count(rec: recorder.Recorder, n: int) -> bool:
    from support import wait_until

    return bool(wait_until(lambda: rec.recorded >= n, 5.0))


def test_only_the_spec_crosses_to_the_device_process():
    q: queue.Queue = queue.Queue()
    dev = AlpacaDevice("127.0.0.1:1", "Focuser", 3, "focus", q, http_timeout=1.5, workers=2)
    state = dev.__getstate__()
    spec = state["_spec"]
    assert (spec.ip, spec.device_type, spec.device_number, spec.device_name, spec.queue) == ("127.0.0.1:1", "Focuser", 3, "focus", q)
    assert (spec.http_timeout, spec.workers, spec.conn) == (1.5, 2, dev.back_pipe)
    caller_side = {"lock", "_channel", "_cache", "_cache_lock", "_state", "_backend", "front_pipe", "back_pipe", "queue"}
    assert not caller_side & set(state), sorted(caller_side & set(state))
    assert set(state) - {"_spec", "_start_method", "_crosses"} <= set(vars(multiprocessing.Process()))
    dev.front_pipe.close()
    dev.back_pipe.close()
