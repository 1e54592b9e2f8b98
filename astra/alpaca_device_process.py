"""ALPACA device multiprocessing wrapper: one OS process per Alpaca device.

Why a process per device: alpyca holds one class-level lock for the whole of every HTTP call,
so one slow device would stall every other device in the same process.

    caller threads ──get/set/poll control──> AlpacaDevice (caller's process)
                                               │ FrontChannel (astra.ipc): ids, deadlines,
                                               │ reader thread, dead-child detection
                                             pipe
                                               │
                                             device process (AlpacaDevice.run)
                                               ├─ listener (listenFront__): control ops inline
                                               ├─ worker threads: get__/set__ with RetryPolicy
                                               ├─ one poll thread per polled member (loop__)
                                               └─ alpyca device ──HTTP──> Alpaca server
    poll results: device process ──push──> poll cache in the caller (poll_latest never waits)
    logs and polled values: device process ──> queue ──> astra.recorder (SQLite)

Queue messages are ``(metadata, payload)``; ``metadata = {"ip", "device_type", "device_number",
"device_name"}``; a log line is ``{"type": "log", "data": (level, text)}``; a polled value is
``{"type": "query", "data": "<INSERT INTO polling ...>", "method", "value", "device_value",
"datetime"}`` (the SQL text is escaped; the extra keys carry the value in structured form).

Create the queue from the same multiprocessing context as the device (``device.context.Queue()``)
or use a Manager queue: a fork-context queue cannot be handed to a spawn/forkserver child.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import logging
import math
import multiprocessing
import os
import collections
import signal
import threading
import time
import zlib
from multiprocessing.connection import Connection, wait
from typing import Any, Dict, List, Optional, Union

from astra import recorder as _recorder
from astra.errors import (
    AlpacaDeviceError,
    AlpacaDeviceIPCError,
    RemoteDeviceError,
    classify,
    format_traceback,
)
from astra.ipc import BackChannel, FrontChannel, RawImage, error_payload
from astra.retry import RetryPolicy

__all__ = [
    "AlpacaDevice",
    "AlpacaDeviceError",
    "AlpacaDeviceIPCError",
    "RemoteDeviceError",
    "RetryPolicy",
    "DEVICE_TYPES",
]

log = logging.getLogger(__name__)

#: lowercase type -> the alpyca class name (module ``alpaca.<lowercase>``).
DEVICE_TYPES: dict[str, str] = {
    "camera": "Camera",
    "covercalibrator": "CoverCalibrator",
    "dome": "Dome",
    "filterwheel": "FilterWheel",
    "focuser": "Focuser",
    "observingconditions": "ObservingConditions",
    "rotator": "Rotator",
    "safetymonitor": "SafetyMonitor",
    "switch": "Switch",
    "telescope": "Telescope",
}

#: First InterfaceVersion of each type that has Platform 7 Connect()/Connecting.
PLATFORM7_INTERFACE: dict[str, int] = {
    "camera": 4,
    "covercalibrator": 2,
    "dome": 3,
    "filterwheel": 3,
    "focuser": 4,
    "observingconditions": 2,
    "rotator": 4,
    "safetymonitor": 3,
    "switch": 3,
    "telescope": 4,
}

START_METHODS = ("spawn", "fork", "forkserver")
CALL_OPS = frozenset({"get", "set", "force_poll"})
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

# Attributes holding threads, locks, pipes' caller end and caches: never pickled to the child,
# rebuilt on each side by _init_local_state().
_LOCAL_KEYS = (
    "lock", "_reap_lock", "_channel", "_cache", "_cache_lock", "_state", "_state_lock",
    "_stop_event", "_ready", "_connect_error", "_connect_lock", "_work", "_workers", "_serve_cond",
    "_listener", "_idle",
    "_pollers", "_poll_lock", "_poll_cond", "_paused", "_latest", "_latest_lock", "_tls", "_back",
    "_stop_rid", "_astra_ppid",
)


def _normalise_type(device_type: str) -> str:
    if not isinstance(device_type, str):
        raise ValueError(f"device_type must be a string naming one of {sorted(DEVICE_TYPES.values())}")
    key = device_type.replace(" ", "").replace("_", "").lower()
    if key not in DEVICE_TYPES:
        raise ValueError(
            f"unknown device_type {device_type!r}; valid types: {', '.join(DEVICE_TYPES.values())}"
        )
    return key


def _utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


class _Poller:
    """One polled member in the device process: its thread, interval and stop flag."""

    def __init__(self, method: str, delay: float) -> None:
        self.method = method
        self.delay = delay
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        #: monotonic time of the next read; changed under the poll condition only
        self.next_at = time.monotonic()


class _RequestsWithTimeout:
    """Stands in for the ``requests`` module inside one alpyca module: ``get`` gets a default timeout."""

    def __init__(self, module: Any, timeout: float) -> None:
        self._module = module
        self._timeout = timeout

    def get(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self._timeout)
        return self._module.get(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


class AlpacaDevice(multiprocessing.Process):
    """Multiprocessing wrapper for ALPACA astronomical devices.

    Parameters (positional, as in the seed API): ``ip`` (``host:port``), ``device_type``
    (e.g. ``"Telescope"``, any case), ``device_number``, ``device_name``, ``queue`` (for logs and
    polled values; None = none), ``connectable`` (connect at start), ``debug`` (forward debug
    lines to the queue). Keyword-only: ``call_timeout`` (deadline of each call, s),
    ``http_timeout`` (per HTTP request, s), ``retry`` (:class:`RetryPolicy` or dict),
    ``start_method`` (``"spawn"|"fork"|"forkserver"``; None = the default context),
    ``connect_timeout`` (how long Connecting may stay true), ``poll_max_backoff_s`` (longest
    wait between polls during an outage), ``image_timeout`` (per ImageArray download, which
    alpyca sends without any timeout), ``workers`` (threads serving calls in the child).
    """

    def __init__(
        self,
        ip: str,
        device_type: str,
        device_number: int,
        device_name: str,
        queue: Any,
        connectable: bool = True,
        debug: bool = False,
        *,
        call_timeout: float = 30.0,
        http_timeout: float = 5.0,
        retry: Union[RetryPolicy, Dict[str, Any], None] = None,
        start_method: Optional[str] = None,
        connect_timeout: float = 30.0,
        poll_max_backoff_s: float = 10.0,
        image_timeout: float = 60.0,
        workers: int = 4,
        daemon: bool = True,
    ) -> None:
        type_key = _normalise_type(device_type)
        if start_method is not None and start_method not in START_METHODS:
            raise ValueError(f"start_method must be one of {START_METHODS} or None, got {start_method!r}")
        if isinstance(device_number, bool) or not isinstance(device_number, int) or device_number < 0:
            raise ValueError(f"device_number must be an int >= 0, got {device_number!r}")
        for name, value in (
            ("call_timeout", call_timeout),
            ("http_timeout", http_timeout),
            ("connect_timeout", connect_timeout),
            ("image_timeout", image_timeout),
        ):
            if not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{name} must be a number > 0, got {value!r}")
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an int >= 1, got {workers!r}")
        super().__init__(name=f"AlpacaDevice[{device_name}]", daemon=daemon)
        # BaseProcess._bootstrap forces this start method as the child's default context.
        self._start_method = start_method
        self.ip = ip
        self.device_type = device_type
        self.type_key = type_key
        self.device_number = device_number
        self.device_name = device_name
        self.queue = queue
        self.connectable = connectable
        self.debug = debug
        self.call_timeout = float(call_timeout)
        self.http_timeout = float(http_timeout)
        self.connect_timeout = float(connect_timeout)
        self.poll_max_backoff_s = float(poll_max_backoff_s)
        self.image_timeout = float(image_timeout)
        self.workers = workers
        self.retry = RetryPolicy.from_value(retry)
        self.metadata: Dict[str, Any] = {
            "ip": ip,
            "device_type": device_type,
            "device_number": device_number,
            "device_name": device_name,
        }
        #: The alpyca device object; made in the device process (assignable, e.g. by tests).
        self.device: Any = None
        self.front_pipe: Optional[Connection]
        self.back_pipe: Optional[Connection]
        self.front_pipe, self.back_pipe = multiprocessing.Pipe(duplex=True)
        self._init_local_state()

    # -- process plumbing ------------------------------------------------------------------------

    def _Popen(self, process_obj: "AlpacaDevice") -> Any:  # noqa: N802 - multiprocessing's name
        """Start through the chosen context (BaseProcess.start calls ``self._Popen(self)``)."""
        return multiprocessing.get_context(self._start_method).Process._Popen(process_obj)

    @property
    def context(self) -> Any:
        """The multiprocessing context this device starts in (make its queue with ``context.Queue()``)."""
        return multiprocessing.get_context(self._start_method)

    def _init_local_state(self) -> None:
        #: Serialises writers on this side's end of the pipe.
        self.lock = threading.RLock()
        # caller side
        self._reap_lock = threading.RLock()
        self._channel: FrontChannel | None = None
        self._cache: dict[str, dict[str, Any]] = {}
        self._cache_lock = threading.Lock()
        self._state = "new"
        self._state_lock = threading.Lock()
        # device-process side (also used by get__/set__ called directly in the caller's process)
        self._stop_event = threading.Event()
        self._ready = threading.Event()
        self._connect_error: dict[str, Any] | None = None
        self._connect_lock = threading.Lock()
        # calls that found no idle thread to take over listening (the listener itself runs the rest)
        self._work: collections.deque = collections.deque()
        self._workers: list[threading.Thread] = []
        self._serve_cond = threading.Condition()
        self._listener: threading.Thread | None = None
        self._idle = 0
        self._pollers: dict[str, _Poller] = {}
        self._poll_lock = threading.Lock()
        self._poll_cond = threading.Condition()
        self._paused = False
        self._latest: dict[str, dict[str, Any]] = {}
        self._latest_lock = threading.Lock()
        self._tls = threading.local()
        self._back: BackChannel | None = None
        self._stop_rid: int | None = None
        self._astra_ppid: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in _LOCAL_KEYS:
            state.pop(key, None)
        state["front_pipe"] = None  # the caller's end stays with the caller
        state["device"] = None  # alpyca objects cannot be pickled; the child makes its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_local_state()

    # -- caller side: lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Start the device process and the reader thread that routes its replies."""
        with self._state_lock:
            if self._state != "new":
                raise RuntimeError(f"{self.name} was already started")
            self._state = "starting"
        try:
            self._preload()
            super().start()
        except BaseException:
            with self._state_lock:
                self._state = "new"
            raise
        # The child has its own copy now; ours would only hide the child's end from EOF.
        if self.back_pipe is not None:
            self.back_pipe.close()
        assert self.front_pipe is not None
        self._channel = FrontChannel(
            self.front_pipe,
            self.sentinel,
            device_name=self.device_name,
            send_lock=self.lock,
            on_push=self._on_push,
            exitcode=self._exitcode,
        )
        self._channel.start()
        with self._state_lock:
            self._state = "running"

    def _preload(self) -> None:
        """Import alpyca here so that children do not each pay for it (about 65 ms of a fork start).

        A fork child inherits the caller's imported modules; a forkserver child those its server
        preloaded, so the server (started on the first forkserver start) gets the list too.
        Spawn children import afresh whatever we do.
        """
        ctx = self.context
        method = ctx.get_start_method()
        if method == "fork":
            importlib.import_module(f"alpaca.{self.type_key}")
            importlib.import_module("requests")
        elif method == "forkserver":
            try:
                from multiprocessing import forkserver

                current = list(getattr(forkserver._forkserver, "_preload_modules", None) or [])
            except Exception:  # pragma: no cover - private layout changed: add ours only
                current = []
            wanted = [m for m in ("astra.alpaca_device_process", "requests", f"alpaca.{self.type_key}") if m not in current]
            if wanted:
                ctx.set_forkserver_preload(current + wanted)

    # Reaping is serialised: the reader thread asks for the exit code while the caller may be in
    # join(), and forkserver's Popen.poll reads the status from a pipe, so two threads polling at
    # once can lose it (one gets the code, the other EOF and 255).

    @property
    def exitcode(self) -> int | None:  # type: ignore[override]
        with self._reap_lock:
            return multiprocessing.Process.exitcode.fget(self)  # type: ignore[attr-defined]

    def is_alive(self) -> bool:
        with self._reap_lock:
            return super().is_alive()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the device process to end (see :meth:`multiprocessing.Process.join`)."""
        if self._popen is None:
            return super().join(timeout)  # not started: multiprocessing's own error
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            if self._exitcode() is not None:
                with self._reap_lock:
                    super().join(0)  # the code is known: this only forgets the child
                return
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            try:
                ready = wait([self.sentinel], 0.5 if remaining is None else min(remaining, 0.5))
            except (OSError, ValueError):
                ready = []
            if ready:  # exited but maybe not yet reapable: do not spin
                time.sleep(0.002)

    def _exitcode(self) -> int | None:
        try:
            return self.exitcode
        except (ValueError, AssertionError):
            return None

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polls and the device process: ask, then terminate, then kill; close both pipe ends.

        Safe to call more than once, and on a device that never started. Afterwards
        ``poll_latest()`` still answers from the cache and calls raise AlpacaDeviceIPCError.
        """
        with self._state_lock:
            previous = self._state
            if previous in ("stopping", "stopped"):
                return
            self._state = "stopping"
        try:
            if previous in ("new", "starting") or self._channel is None:
                return
            channel = self._channel
            channel.stopping = True
            deadline = time.monotonic() + max(0.0, timeout)
            if self._exitcode() is None:
                try:
                    channel.request("stop", {}, max(0.05, timeout), method="stop")
                except AlpacaDeviceError:
                    pass
            self.join(max(0.0, deadline - time.monotonic()))
            if self._exitcode() is None:
                log.warning("[%s] device process did not exit within %.3g s; terminating", self.device_name, timeout)
                self.terminate()
                self.join(1.0)
            if self._exitcode() is None:
                log.warning("[%s] device process ignored SIGTERM; killing", self.device_name)
                self.kill()
                self.join(5.0)
            channel.fail_all("stopped", f"[{self.device_name}] the device process was stopped")
            channel.join(2.0)
        finally:
            for conn in (self.front_pipe, self.back_pipe):
                if conn is not None:
                    try:
                        conn.close()
                    except OSError:
                        pass
            with self._state_lock:
                self._state = "stopped"

    def _channel_for(self, method: str | None) -> FrontChannel:
        state = self._state
        if state in ("stopping", "stopped"):
            raise AlpacaDeviceIPCError(
                f"[{self.device_name}] {method or 'call'}: the device process was stopped",
                reason="stopped", device_name=self.device_name, method=method,
            )
        if self._channel is None:
            raise AlpacaDeviceIPCError(
                f"[{self.device_name}] {method or 'call'}: the device process is not running (call start() first)",
                reason="closed", device_name=self.device_name, method=method,
            )
        return self._channel

    def _request(self, op: str, payload: dict[str, Any], timeout: float | None, method: str | None) -> Any:
        return self._channel_for(method).request(op, payload, self.call_timeout if timeout is None else timeout, method)

    # -- caller side: calls ----------------------------------------------------------------------

    def get(self, method: str, **kwargs: Any) -> Any:
        """Read property ``method``, or call it with ``kwargs`` (a member without arguments is called too)."""
        return self.call(method, kwargs)

    def call(self, method: str, kwargs: Optional[Dict[str, Any]] = None, *, timeout: Optional[float] = None) -> Any:
        """``get`` with an explicit deadline (``timeout`` s instead of ``call_timeout``)."""
        _check_member(method)
        return self._request("get", {"method": method, "kwargs": dict(kwargs or {})}, timeout, method)

    def set(self, method: str, value: Any, *, timeout: Optional[float] = None) -> Any:
        """Write property ``method``."""
        _check_member(method)
        return self._request("set", {"method": method, "value": value}, timeout, method)

    # -- caller side: polling --------------------------------------------------------------------

    def start_poll(self, method: str, delay: float) -> None:
        """Poll ``method`` every ``delay`` s (one thread per member; a second call changes the interval)."""
        _check_member(method)
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not delay > 0:
            raise ValueError(f"poll delay must be a number > 0 (seconds), got {delay!r}")
        self._request("start_poll", {"method": method, "delay": float(delay)}, None, method)

    def stop_poll(self, method: Optional[str] = None) -> None:
        """Stop polling ``method`` (None: all); returns once the poll threads have ended."""
        self._request("stop_poll", {"method": method}, None, method)

    def pause_polls(self) -> None:
        self._request("pause", {}, None, None)

    def resume_polls(self) -> None:
        self._request("resume", {}, None, None)

    def poll_list(self) -> List[str]:
        """Members being polled now."""
        return self._request("poll_list", {}, None, None)

    def poll_latest(self) -> Optional[Dict[str, Dict[str, Any]]]:
        """Latest poll results from the local cache, without ever waiting for the device process.

        ``{method: {"value", "datetime", "error", "error_time", "failures"}}``: ``value`` and
        ``datetime`` (aware UTC) are those of the last good reading, so staleness grows during an
        outage; ``error``/``error_time`` describe the latest attempt if it failed (None once a poll
        succeeds again), ``failures`` counts failures since the last good reading. A member
        appears with its first good reading; None until there is one.
        """
        with self._cache_lock:
            if not self._cache:
                return None
            return {method: dict(entry) for method, entry in self._cache.items()}

    def force_poll(self, method: str, **kwargs: Any) -> Any:
        """Read ``method`` once now and record it like a poll (queue and cache); returns the value."""
        _check_member(method)
        return self._request("force_poll", {"method": method, "kwargs": kwargs}, None, method)

    def _on_push(self, what: str, data: Any) -> None:
        """Reader thread: a poll result from the device process updates the cache."""
        if what != "poll":
            log.debug("[%s] ignoring push %r", self.device_name, what)
            return
        method = data["method"]
        with self._cache_lock:
            entry = self._cache.get(method)
            if data["ok"]:
                self._cache[method] = {
                    "value": data["value"],
                    "datetime": data["datetime"],
                    "error": None,
                    "error_time": None,
                    "failures": 0,
                }
            elif entry is not None:
                self._cache[method] = dict(
                    entry, error=data["error"], error_time=data["error_time"], failures=entry.get("failures", 0) + 1
                )

    # -- device process ----------------------------------------------------------------------------

    def run(self) -> None:
        """Device process main loop: make the alpyca device, connect, serve requests until stopped."""
        self._init_local_state()
        self._astra_ppid = os.getppid()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the caller owns Ctrl-C
        signal.signal(signal.SIGTERM, self.stop__)
        if self.front_pipe is not None:  # fork: we inherited the caller's end
            try:
                self.front_pipe.close()
            except OSError:
                pass
            self.front_pipe = None
        assert self.back_pipe is not None
        self._back = BackChannel(self.back_pipe, self.lock)
        threading.Thread(target=self._connect__, name="astra-connect", daemon=True).start()
        try:
            # Leader/follower: one of these threads listens; the one that reads a call runs it
            # itself while an idle one takes over listening, so a call needs no thread hand-off
            # and control messages are never stuck behind a slow call. ``workers`` calls at most
            # run at once (one thread always listens).
            for i in range(self.workers + 1):
                worker = threading.Thread(target=self._worker__, name=f"astra-worker-{i}", daemon=True)
                worker.start()
                self._workers.append(worker)
            while not self._stop_event.wait(0.5):
                pass
        finally:
            self._shutdown__()

    def _make_device(self) -> Any:
        import requests

        class _TimeoutSession(requests.Session):
            """alpyca's session, with our HTTP timeout on every request (alpyca hard-codes 5 s)."""

            def __init__(self, timeout: float) -> None:
                super().__init__()
                self.astra_timeout = timeout

            def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
                kwargs["timeout"] = self.astra_timeout
                return super().request(method, url, *args, **kwargs)

        module = importlib.import_module(f"alpaca.{self.type_key}")
        device = getattr(module, DEVICE_TYPES[self.type_key])(self.ip, self.device_number)
        device.rqs.close()
        device.rqs = _TimeoutSession(self.http_timeout)
        if self.type_key == "camera":
            # alpyca downloads images with a bare requests.get and no timeout, holding its
            # class-wide lock: one hung download would wedge this process for good. This
            # process serves only this device, so giving that module a timeout is contained.
            module.requests = _RequestsWithTimeout(requests, self.image_timeout)  # type: ignore[attr-defined]
        return device

    def _connect__(self) -> None:
        """Make the device object and, if connectable, connect (Platform 7 Connect, else Connected=True)."""
        try:
            if self.device is None:
                try:
                    self.device = self._make_device()
                except Exception as exc:
                    err = RemoteDeviceError.from_fields(
                        dict(classify(exc), method="create", device_name=self.device_name, ambiguous=False)
                    )
                    self._fail_connect(err, exc)
                    return
            if not self.connectable:
                return
            deadline = time.monotonic() + self.connect_timeout
            dev = self.device
            try:
                version = self._attempt("read", "InterfaceVersion", lambda: dev.InterfaceVersion, deadline)
                if isinstance(version, int) and version >= PLATFORM7_INTERFACE[self.type_key]:
                    self._attempt("method", "Connect", dev.Connect, deadline)
                    while self._attempt("read", "Connecting", lambda: dev.Connecting, deadline):
                        if time.monotonic() > deadline:
                            raise RemoteDeviceError(
                                f"[{self.device_name}] Connect: still connecting after {self.connect_timeout:g} s",
                                cause="timeout", ambiguous=True, method="Connect", device_name=self.device_name,
                                remote_type="TimeoutError", remote_message=f"Connecting still true after {self.connect_timeout:g} s",
                            )
                        if self._stop_event.wait(0.05):
                            return
                else:
                    self._attempt("write", "Connected", lambda: setattr(dev, "Connected", True), deadline)
                if not self._attempt("read", "Connected", lambda: dev.Connected, deadline):
                    raise RemoteDeviceError(
                        f"[{self.device_name}] Connect: the device still reports Connected=False",
                        cause="other", ambiguous=False, method="Connect", device_name=self.device_name,
                        remote_type="ConnectFailed", remote_message="Connected is False after connecting",
                    )
                self._log("info", f"connected to {self.device_type} {self.device_number} at {self.ip}")
            except RemoteDeviceError as err:
                self._fail_connect(err, err)
        except Exception as exc:  # pragma: no cover - never leave callers waiting for _ready
            self._fail_connect(RemoteDeviceError(str(exc), remote_type=type(exc).__name__, remote_message=str(exc)), exc)
        finally:
            self._ready.set()

    def _fail_connect(self, err: RemoteDeviceError, exc: BaseException) -> None:
        payload = error_payload(err, format_traceback(exc))
        payload["remote_message"] = f"initial connect failed: {payload.get('remote_message')}"
        with self._connect_lock:
            self._connect_error = payload
        self._log("error", f"initial connect failed: {err}")

    def _take_connect_error(self) -> dict[str, Any] | None:
        """The connect failure goes to the first caller only."""
        with self._connect_lock:
            err, self._connect_error = self._connect_error, None
        return err

    def listenFront__(self) -> bool:  # noqa: N802 - seed API name
        """Read and route one message from the caller; False when the process should stop."""
        if self._stop_event.is_set():
            return False
        if os.getppid() != self._astra_ppid:
            self._log("warning", "the calling process is gone; stopping")
            return False
        assert self._back is not None
        try:
            msg = self._back.recv(0.2)
        except (EOFError, OSError):
            self._log("info", "the caller closed the pipe; stopping")
            return False
        if msg is None:
            return True
        try:
            op, rid, deadline, payload = msg
        except (TypeError, ValueError):
            self._log("error", f"malformed request ignored: {msg!r}")
            return True
        if op == "stop":
            self._stop_rid = rid
            self._stop_event.set()
            return False
        if op in CALL_OPS:
            with self._serve_cond:
                if self._listener is threading.current_thread() and self._idle > 0:
                    # run it here, once an idle thread has been told to listen in our place
                    self._listener = None
                    self._tls.inline = msg
                else:
                    self._work.append(msg)
                self._serve_cond.notify()
        elif op == "stop_poll":  # joins poll threads: never block the listener on that
            threading.Thread(target=self._run_op, args=(msg,), name="astra-stop-poll", daemon=True).start()
        else:
            self._run_op(msg)
        return True

    def _worker__(self) -> None:
        """One thread of the device process's pool: run queued calls, else listen, else wait."""
        me = threading.current_thread()
        cond = self._serve_cond
        tls = self._tls
        while True:
            with cond:
                while True:
                    if self._stop_event.is_set():
                        return
                    if self._work:
                        msg, lead = self._work.popleft(), False
                        break
                    if self._listener is None:
                        self._listener, lead = me, True
                        break
                    self._idle += 1
                    cond.wait(1.0)
                    self._idle -= 1
            if not lead:
                self._run_op(msg)
                continue
            tls.inline = None
            while True:
                if not self.listenFront__():
                    self._stop_event.set()
                    with cond:
                        self._listener = None
                        cond.notify_all()
                    return
                msg, tls.inline = tls.inline, None
                if msg is not None:  # we gave up listening to run this call
                    self._run_op(msg)
                    break

    def _run_op(self, msg: tuple) -> None:
        op, rid, deadline, payload = msg
        method = payload.get("method")
        self._tls.rid, self._tls.deadline = rid, deadline
        try:
            if self._stop_event.is_set():
                self._reply(False, error_payload(AlpacaDeviceIPCError(
                    f"[{self.device_name}] {op} {method or ''}: the device process is stopping",
                    reason="stopped", method=method)))
                return
            if time.monotonic() > deadline:
                self._log("warning", f"skipped {op} {method or ''}: its caller gave up before it started")
                self._reply(False, error_payload(AlpacaDeviceIPCError(
                    f"[{self.device_name}] {op} {method or ''}: deadline passed before it started", reason="timeout", method=method)))
                return
            if op in CALL_OPS:
                if not self._ready.wait(max(0.0, deadline - time.monotonic())):
                    self._reply(False, error_payload(AlpacaDeviceIPCError(
                        f"[{self.device_name}] {op} {method}: still connecting at the deadline", reason="timeout", method=method)))
                    return
                connect_error = self._take_connect_error()
                if connect_error is not None:
                    self._reply(False, connect_error)
                    return
            if op == "get":
                self.get__(method, pipe=True, **payload["kwargs"])
            elif op == "set":
                self.set__(method, payload["value"])
            elif op == "force_poll":
                self._force_poll__(method, payload["kwargs"])
            elif op == "start_poll":
                self.start_poll__(method, payload["delay"])
                self._reply(True, None)
            elif op == "stop_poll":
                self.stop_poll__(method)
                self._reply(True, None)
            elif op == "pause":
                self._set_paused(True)
                self._reply(True, None)
            elif op == "resume":
                self._set_paused(False)
                self._reply(True, None)
            elif op == "poll_list":
                self.poll_list__()
            elif op == "poll_latest":
                self.poll_latest__()
            else:
                self._reply(False, error_payload(RemoteDeviceError(
                    f"unknown request {op!r}", cause="other", ambiguous=False, method=method,
                    remote_type="ValueError", remote_message=f"unknown request {op!r}")))
        except Exception as exc:  # keep serving; the caller gets the error
            err = RemoteDeviceError.from_fields(
                {"cause": "other", "ambiguous": True, "method": method, "device_name": self.device_name,
                 "remote_type": type(exc).__name__, "remote_message": str(exc)})
            try:
                self._reply(False, error_payload(err, format_traceback(exc)))
            except Exception:
                pass
        finally:
            self._tls.rid = self._tls.deadline = None

    def _reply(self, ok: bool, value: Any) -> None:
        rid = getattr(self._tls, "rid", None)
        if rid is None or self._back is None:
            return
        try:
            self._back.reply(rid, ok, value)
        except (OSError, ValueError, EOFError):
            self._stop_event.set()  # the caller is gone

    def _push(self, what: str, value: Any) -> None:
        if self._back is None:
            return
        try:
            self._back.push(what, value)
        except (OSError, ValueError, EOFError):
            self._stop_event.set()
        except Exception as exc:  # e.g. a value that cannot be pickled
            log.error("[%s] could not push %s: %s", self.device_name, what, exc)

    # -- device process: calls -------------------------------------------------------------------

    def _resolve(self, op: str, method: str, kwargs: dict[str, Any], value: Any = None) -> tuple[str, Any]:
        """(kind, zero-argument callable) for one call on ``self.device``; kind decides retries."""
        dev = self.device
        if dev is None:
            raise RemoteDeviceError(
                f"[{self.device_name}] {method}: no device object", cause="other", ambiguous=False,
                method=method, device_name=self.device_name, remote_type="RuntimeError",
                remote_message="the device object has not been made (start the process, or assign .device)",
            )
        if op == "set":
            return "write", lambda: setattr(dev, method, value)
        if op == "image" and hasattr(dev, "_fetch_imagedata_response"):
            return "read", lambda: self._raw_image(dev)
        if isinstance(getattr(type(dev), method, None), property) and not kwargs:
            return "read", lambda: getattr(dev, method)
        try:
            member = getattr(dev, method)
        except AttributeError as exc:
            raise RemoteDeviceError(
                f"[{self.device_name}] {method}: {type(dev).__name__} has no member {method!r}",
                cause="other", ambiguous=False, method=method, device_name=self.device_name,
                remote_type="AttributeError", remote_message=f"{type(dev).__name__} has no member {method!r}",
            ) from exc
        if callable(member):
            return "method", lambda: member(**kwargs)
        if kwargs:
            raise RemoteDeviceError(
                f"[{self.device_name}] {method}: is not callable but was given arguments {sorted(kwargs)}",
                cause="other", ambiguous=False, method=method, device_name=self.device_name,
                remote_type="TypeError", remote_message=f"{method} is not callable",
            )
        return "read", lambda: member

    @staticmethod
    def _raw_image(dev: Any) -> Any:
        """ImageArray as alpyca reads it, but kept as its flat pixel array for the pipe (see RawImage)."""
        response = dev._fetch_imagedata_response("imagearray")
        if "application/imagebytes" not in (response.headers.get("content-type") or ""):
            return dev._get_json_imagedata(response)  # JSON image: alpyca's nested lists as they are
        pixels = dev._build_imagedata_array(response)
        del response
        desc = dev.img_desc
        return RawImage(pixels, desc.Rank, desc.Dimension1, desc.Dimension2, desc.Dimension3)

    def _attempt(self, kind: str, method: str, fn: Any, deadline: float | None) -> Any:
        """Run ``fn`` under the retry policy; failures become RemoteDeviceError with their cause."""
        attempts = 0
        while True:
            attempts += 1
            try:
                return fn()
            except RemoteDeviceError:
                raise
            except Exception as exc:
                info = classify(exc)
                if self.retry.should_retry(kind, info["cause"], attempts):  # type: ignore[arg-type]
                    wait = self.retry.delay(attempts)
                    if deadline is None or time.monotonic() + wait < deadline:
                        self._log(
                            "warning",
                            f"{method}: {info['cause']} ({info['remote_type']}: {info['remote_message']}); "
                            f"retry {attempts}/{self.retry.tries - 1} in {wait:.3g} s",
                        )
                        if not self._stop_event.wait(wait):
                            continue
                err = RemoteDeviceError.from_fields(dict(info, method=method, device_name=self.device_name, attempts=attempts))
                err.__cause__ = exc
                raise err from exc

    def _execute(self, op: str, method: str, kwargs: dict[str, Any], value: Any = None) -> Any:
        kind, fn = self._resolve(op, method, kwargs, value)
        return self._attempt(kind, method, fn, getattr(self._tls, "deadline", None))

    def _status(self, op: str, method: str, kwargs: dict[str, Any], value: Any = None) -> tuple[bool, Any, BaseException | None]:
        try:
            return True, self._execute(op, method, kwargs, value), None
        except RemoteDeviceError as err:
            return False, err, err
        except Exception as exc:
            err = AlpacaDeviceError.from_device(self, exc, op, method)
            return False, err, exc

    def get__(self, method: str, pipe: bool = True, **kwargs: Any) -> Any:  # noqa: N802
        """Run one read or method call on ``self.device`` with the retry policy.

        ``pipe=True`` (in the device process): the result goes to the caller over the pipe.
        ``pipe=False``: returns ``{"status": "success", "data": value}`` or
        ``{"status": "error", "message": text, "error": fields}``, so it also works in the
        caller's own process on an assigned ``device``.
        """
        op = "image" if pipe and method == "ImageArray" and not kwargs and self.type_key == "camera" else "get"
        ok, result, exc = self._status(op, method, kwargs)
        return self._deliver(ok, result, exc, pipe)

    def set__(self, method: str, value: Any, pipe: bool = True) -> Any:  # noqa: N802
        """Write property ``method`` on ``self.device``; delivered like :meth:`get__`."""
        ok, result, exc = self._status("set", method, {}, value)
        return self._deliver(ok, None if ok else result, exc, pipe)

    def _deliver(self, ok: bool, result: Any, exc: BaseException | None, pipe: bool) -> Any:
        if pipe:
            if ok:
                self._reply(True, result)
            else:
                self._reply(False, error_payload(result, format_traceback(exc) if exc is not None else None))
            return None
        if ok:
            return {"status": "success", "data": result}
        out: dict[str, Any] = {"status": "error", "message": str(result)}
        if isinstance(result, RemoteDeviceError):
            out["error"] = result.fields()
        return out

    def _force_poll__(self, method: str, kwargs: dict[str, Any]) -> None:
        ok, result, exc = self._status("get", method, kwargs)
        if ok:
            self._record_poll(method, result, _utcnow())
            self._reply(True, result)
        else:
            self._record_poll_error(method, result, _utcnow())
            self._reply(False, error_payload(result, format_traceback(exc) if exc is not None else None))

    # -- device process: polling -----------------------------------------------------------------

    def start_poll__(self, method: str, delay: float) -> None:  # noqa: N802
        """Start the poll thread of ``method`` (exactly one per member; a repeat changes the interval)."""
        with self._poll_lock:
            poller = self._pollers.get(method)
            if poller is not None:
                with self._poll_cond:
                    poller.delay = delay
                    poller.next_at = min(poller.next_at, time.monotonic() + delay)
                    self._poll_cond.notify_all()
                self._log("info", f"poll {method}: interval now {delay:g} s")
                return
            poller = _Poller(method, delay)
            poller.thread = threading.Thread(target=self.loop__, args=(method, delay), name=f"astra-poll[{method}]", daemon=True)
            self._pollers[method] = poller
            poller.thread.start()
        self._log("info", f"polling {method} every {delay:g} s")

    def stop_poll__(self, method: Optional[str] = None, *args: Any) -> None:  # noqa: N802
        """Stop polling ``method`` (None, or a signal number when used as a handler: all) and wait for the threads."""
        if not isinstance(method, str):
            method = None
        with self._poll_lock:
            if method is None:
                stopped = list(self._pollers.values())
                self._pollers.clear()
            else:
                poller = self._pollers.pop(method, None)
                stopped = [poller] if poller is not None else []
        for poller in stopped:
            poller.stop.set()
        with self._poll_cond:
            self._poll_cond.notify_all()
        deadline = time.monotonic() + self.http_timeout + 1.0
        for poller in stopped:
            if poller.thread is not None and poller.thread is not threading.current_thread():
                poller.thread.join(max(0.0, deadline - time.monotonic()))
        if stopped:
            self._log("info", f"stopped polling {', '.join(p.method for p in stopped)}")

    def _set_paused(self, paused: bool) -> None:
        with self._poll_cond:
            self._paused = paused
            self._poll_cond.notify_all()
        self._log("info", "polls paused" if paused else "polls resumed")

    def _wait_slot(self, poller: _Poller) -> bool:
        """Sleep until ``poller.next_at`` (and while paused) without busy-waiting; False when the poll must end."""
        with self._poll_cond:
            paused = False
            while True:
                if poller.stop.is_set() or self._stop_event.is_set():
                    return False
                if self._paused:
                    paused = True
                    self._poll_cond.wait(0.5)
                    continue
                if paused:
                    # Resume on the old grid (keep the phase), so resumed polls do not all fire at once.
                    paused = False
                    now = time.monotonic()
                    if poller.next_at < now:
                        poller.next_at += math.ceil((now - poller.next_at) / poller.delay) * poller.delay
                remaining = poller.next_at - time.monotonic()
                if remaining <= 0:
                    return True
                self._poll_cond.wait(remaining)

    def loop__(self, method: str, delay: float) -> None:  # noqa: N802
        """Poll thread: read ``method`` at a fixed rate; ride out outages with backoff, recover by itself."""
        with self._poll_lock:
            poller = self._pollers.get(method)
        if poller is None:
            return
        while not self._ready.wait(0.2):  # polls start once the connect has finished
            if poller.stop.is_set() or self._stop_event.is_set():
                return
        failures = 0
        with self._poll_cond:
            poller.next_at = time.monotonic() + self._poll_phase(method, poller.delay)
        while self._wait_slot(poller):
            try:
                kind, fn = self._resolve("get", method, {})
                value = self._attempt_once(kind, method, fn)
            except RemoteDeviceError as err:
                failures += 1
                self._record_poll_error(method, err, _utcnow())
                backoff = min(poller.delay * (2 ** failures), max(poller.delay, self.poll_max_backoff_s))
                if failures == 1:
                    self._log("warning", f"poll {method} failed: {err}; backing off")
                else:
                    self._log("debug", f"poll {method} failed {failures} times in a row: {err}")
                self._schedule(poller, time.monotonic() + backoff)
                continue
            if poller.stop.is_set():  # stopped while the read was in flight: record nothing more
                return
            self._record_poll(method, value, _utcnow())
            if failures:
                self._log("info", f"poll {method} recovered after {failures} failed reads")
                failures = 0
                self._schedule(poller, time.monotonic() + poller.delay)
            else:
                # Fixed rate: the next slot counts from the last one, so read time does not add up;
                # a read that took longer than the interval skips slots, never bursts.
                self._schedule(poller, max(poller.next_at + poller.delay, time.monotonic()))

    def _poll_phase(self, method: str, delay: float) -> float:
        """Where in its interval a member's schedule starts: spread by name, so polls started
        together (a start_poll loop, many devices) do not reach the server in bursts."""
        fraction = (zlib.crc32(f"{self.device_name}/{method}".encode()) % 1000) / 1000
        return fraction * min(delay, 1.0)

    def _schedule(self, poller: _Poller, when: float) -> None:
        with self._poll_cond:
            poller.next_at = when

    def _attempt_once(self, kind: str, method: str, fn: Any) -> Any:
        try:
            return fn()
        except Exception as exc:
            err = RemoteDeviceError.from_fields(dict(classify(exc), method=method, device_name=self.device_name, attempts=1))
            raise err from exc

    def _record_poll(self, method: str, value: Any, when: _dt.datetime) -> None:
        with self._latest_lock:
            self._latest[method] = {"value": value, "datetime": when, "error": None, "error_time": None}
        self._push("poll", {"method": method, "ok": True, "value": value, "datetime": when})
        sql = _recorder.polling_insert_sql(self.device_type, self.device_name, method, value, when)
        self._put({
            "type": "query",
            "data": sql,
            "table": "polling",
            "method": method,
            "value": value,
            "device_value": _recorder.device_value_text(value),
            "datetime": when,
        })

    def _record_poll_error(self, method: str, err: Any, when: _dt.datetime) -> None:
        text = str(err)
        with self._latest_lock:
            entry = self._latest.get(method)
            if entry is not None:
                self._latest[method] = dict(entry, error=text, error_time=when)
        self._push("poll", {"method": method, "ok": False, "error": text, "error_time": when})

    def poll_list__(self) -> List[str]:  # noqa: N802
        """The polled members (also sent over the pipe when serving a request)."""
        with self._poll_lock:
            methods = list(self._pollers)
        self._reply(True, methods)
        return methods

    def poll_latest__(self) -> Optional[Dict[str, Dict[str, Any]]]:  # noqa: N802
        """The device process's view of the latest polls (also sent over the pipe when serving a request)."""
        with self._latest_lock:
            latest = {m: dict(e) for m, e in self._latest.items()} or None
        self._reply(True, latest)
        return latest

    def stop__(self, *args: Any) -> None:  # noqa: N802
        """Ask the device process to stop (also its SIGTERM handler: it only sets a flag)."""
        self._stop_event.set()

    def _shutdown__(self) -> None:
        """After the listener ends: stop polls, answer the stop request, close the pipe."""
        self._stop_event.set()
        try:
            with self._poll_lock:
                pollers = list(self._pollers.values())
                self._pollers.clear()
            for poller in pollers:
                poller.stop.set()
            with self._poll_cond:
                self._poll_cond.notify_all()
            deadline = time.monotonic() + 1.0
            for poller in pollers:
                if poller.thread is not None:
                    poller.thread.join(max(0.0, deadline - time.monotonic()))
            self._log("info", "device process stopping")
            if self._stop_rid is not None:
                self._tls.rid = self._stop_rid
                self._reply(True, None)
        finally:
            if self.back_pipe is not None:
                try:
                    self.back_pipe.close()
                except OSError:
                    pass
            # From here on a terminate() must end us at once, even while the queue flushes.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    # -- queue -----------------------------------------------------------------------------------

    def _put(self, payload: dict[str, Any]) -> None:
        if self.queue is None:
            return
        try:
            self.queue.put((self.metadata, payload))
        except Exception as exc:
            log.error("[%s] could not put on the queue: %s", self.device_name, exc)

    def _log(self, level: str, text: str) -> None:
        """A log line to the queue (debug lines only when ``debug``) and to ``logging``."""
        log.log(_LEVELS.get(level, logging.INFO), "[%s] %s", self.device_name, text)
        if level == "debug" and not self.debug:
            return
        self._put({"type": "log", "data": (level, text)})


def _check_member(method: Any) -> None:
    if not isinstance(method, str) or not method:
        raise TypeError(f"member name must be a non-empty string, got {method!r}")
