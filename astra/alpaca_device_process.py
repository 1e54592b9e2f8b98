"""ALPACA device multiprocessing wrapper: one OS process per Alpaca device.

Why a process per device: alpyca holds one class-level lock for the whole of every HTTP call,
so one slow device would stall every other device in the same process.

    caller threads ──get/set/poll control──> AlpacaDevice (caller's process; this module)
                                               │ DeviceChannel (astra.ipc): one owner thread,
                                               │ a future per call, deadlines, dead-child detection
                                             pipe (frames: astra.protocol)
                                               │ only a DeviceSpec crosses to the child
                                             device process: DeviceServer (astra.server)
                                               ├─ listener: poll control at once, calls to the pool
                                               ├─ ThreadPoolExecutor: calls with RetryPolicy (astra.calls)
                                               ├─ one poll thread per polled member (astra.polling)
                                               └─ alpyca device (astra.alpyca) ──HTTP──> Alpaca server
    poll results: device process ──push──> poll cache in the caller (poll_latest never waits)
    logs and polled values: device process ──> queue ──> astra.recorder (SQLite)

Queue messages are described in :mod:`astra.reporting`. Create the queue from the same
multiprocessing context as the device (``device.context.Queue()``) or use a Manager queue: a
fork-context queue cannot be handed to a spawn/forkserver child.

Errors (astra.errors): every failure is an :class:`AlpacaDeviceError` keeping its ``request``;
:class:`AlpacaDeviceIPCError` subclasses (``DeviceTimeout``, ``DeviceDead``, ...) for failures
between the processes, :class:`RemoteDeviceError` subclasses (``RemoteAscomError``,
``RemoteTimeout``, ...) for the device side.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import multiprocessing
import threading
import time
from multiprocessing.connection import Connection, wait
from typing import Any, Dict, List, Optional, Union

from astra import alpyca
from astra.errors import (
    AlpacaDeviceError,
    AlpacaDeviceIPCError,
    BadArguments,
    BrokenChannel,
    ChannelClosed,
    DeviceDead,
    DeviceStopped,
    DeviceTimeout,
    RemoteAscomError,
    RemoteDeviceError,
    RemoteDropped,
    RemoteHTTPStatus,
    RemoteMalformed,
    RemoteOther,
    RemoteRefused,
    RemoteTimeout,
)
from astra.ipc import DeviceChannel
from astra.methods import DeviceMethod
from astra.protocol import MethodHandle, Request
from astra.retry import RetryPolicy
from astra.server import DeviceServer, DeviceSpec

__all__ = [
    "AlpacaDevice",
    "AlpacaDeviceError",
    "AlpacaDeviceIPCError",
    "RemoteDeviceError",
    "DeviceTimeout",
    "DeviceDead",
    "DeviceStopped",
    "ChannelClosed",
    "BrokenChannel",
    "RemoteAscomError",
    "RemoteHTTPStatus",
    "RemoteRefused",
    "RemoteTimeout",
    "RemoteDropped",
    "RemoteMalformed",
    "RemoteOther",
    "BadArguments",
    "DeviceMethod",
    "Request",
    "RetryPolicy",
    "DEVICE_TYPES",
]

log = logging.getLogger(__name__)

DEVICE_TYPES = alpyca.DEVICE_TYPES
START_METHODS = ("spawn", "fork", "forkserver")


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

    The object holds the caller's side only; the child gets a :class:`DeviceSpec` (plus
    multiprocessing's own bookkeeping) and serves it with :attr:`server_class`.
    """

    #: what the device process runs (a subclass may bring its own, e.g. with another ``make_device``)
    server_class: type[DeviceServer] = DeviceServer

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
        type_key = alpyca.type_key(device_type)
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
        # What crosses to the child when it is spawned: multiprocessing's own fields, set just
        # now, plus the spec and the start method (BaseProcess._bootstrap forces it there).
        self._crosses = frozenset(self.__dict__) | {"_spec", "_start_method", "_crosses"}
        self._start_method = start_method
        self.front_pipe: Optional[Connection]
        self.back_pipe: Optional[Connection]
        self.front_pipe, self.back_pipe = multiprocessing.Pipe(duplex=True)
        self._spec = DeviceSpec(
            ip, device_type, device_number, device_name, queue, self.back_pipe,
            connectable=connectable, debug=debug, http_timeout=float(http_timeout),
            connect_timeout=float(connect_timeout), poll_max_backoff_s=float(poll_max_backoff_s),
            image_timeout=float(image_timeout), workers=workers, retry=RetryPolicy.from_value(retry),
        )
        self.ip = ip
        self.device_type = device_type
        self.type_key = type_key
        self.device_number = device_number
        self.device_name = device_name
        self.queue = queue
        self.connectable = connectable
        self.debug = debug
        self.call_timeout = float(call_timeout)
        self.http_timeout = self._spec.http_timeout
        self.connect_timeout = self._spec.connect_timeout
        self.poll_max_backoff_s = self._spec.poll_max_backoff_s
        self.image_timeout = self._spec.image_timeout
        self.workers = workers
        self.retry = self._spec.retry
        self.metadata: Dict[str, Any] = self._spec.metadata
        #: Serialises writers on the caller's end of the pipe.
        self.lock = threading.Lock()
        self._reap_lock = threading.RLock()
        self._channel: DeviceChannel | None = None
        self._cache: dict[str, dict[str, Any]] = {}
        self._cache_lock = threading.Lock()
        self._state = "new"
        self._state_lock = threading.Lock()
        self._backend: DeviceServer | None = None  # back-side calls made in this process (get__ etc.)
        self._backend_lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k in self._crosses}

    # -- process plumbing ------------------------------------------------------------------------

    def _Popen(self, process_obj: "AlpacaDevice") -> Any:  # noqa: N802 - multiprocessing's name
        """Start through the chosen context (BaseProcess.start calls ``self._Popen(self)``)."""
        return multiprocessing.get_context(self._start_method).Process._Popen(process_obj)

    @property
    def context(self) -> Any:
        """The multiprocessing context this device starts in (make its queue with ``context.Queue()``)."""
        return multiprocessing.get_context(self._start_method)

    def run(self) -> None:
        """Device process main loop: make the alpyca device, connect, serve requests until stopped."""
        front = self.__dict__.get("front_pipe")
        if front is not None:  # fork: we inherited the caller's end
            try:
                front.close()
            except OSError:
                pass
        type(self).server_class(self._spec).serve()

    # -- caller side: lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Start the device process and the owner thread that routes its replies."""
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
        self._channel = DeviceChannel(
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
            importlib.import_module(alpyca.module_name(self.type_key))
            importlib.import_module("requests")
        elif method == "forkserver":
            try:
                from multiprocessing import forkserver

                current = list(getattr(forkserver._forkserver, "_preload_modules", None) or [])
            except Exception:  # pragma: no cover - private layout changed: add ours only
                current = []
            wanted = [m for m in ("astra.alpaca_device_process", "requests", alpyca.module_name(self.type_key))
                      if m not in current]
            if wanted:
                ctx.set_forkserver_preload(current + wanted)

    # Reaping is serialised: the owner thread asks for the exit code while the caller may be in
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
        ``poll_latest()`` still answers from the cache and calls raise DeviceStopped.
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
                    channel.request(Request("stop"), max(0.05, timeout))
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
            channel.fail_all(DeviceStopped(f"[{self.device_name}] the device process was stopped", device_name=self.device_name))
            channel.close()
        finally:
            for conn in (self.front_pipe, self.back_pipe):
                if conn is not None:
                    try:
                        conn.close()
                    except OSError:
                        pass
            with self._state_lock:
                self._state = "stopped"

    def _request(self, request: Request, timeout: float | None = None) -> Any:
        channel = self._channel
        if channel is None or self._state in ("stopping", "stopped"):
            if self._state in ("stopping", "stopped"):
                raise DeviceStopped(f"[{self.device_name}] {request.describe()}: the device process was stopped",
                                    request=request, device_name=self.device_name)
            raise ChannelClosed(f"[{self.device_name}] {request.describe()}: the device process is not running (call start() first)",
                                request=request, device_name=self.device_name)
        return channel.request(request, self.call_timeout if timeout is None else timeout)

    # -- caller side: calls ----------------------------------------------------------------------

    def get(self, method: str, **kwargs: Any) -> Any:
        """Read property ``method``, or call method ``method`` with ``kwargs``.

        A method named without arguments is not called: ``get`` hands back a :class:`DeviceMethod`,
        which makes the call (through the pipe, with the deadline) when invoked, as the original
        controller's callers expect (``camera.get("AbortExposure")()``). ``no_kwargs=True`` calls it
        now with no arguments, as in the original (``dome.get("OpenShutter", no_kwargs=True)``);
        the flag itself is never sent (``no_kwargs=False`` is the same as leaving it out).
        Arguments the member cannot take raise :class:`BadArguments` (a TypeError) before
        anything reaches the server.
        """
        _check_member(method)
        if "no_kwargs" in kwargs:
            if kwargs.pop("no_kwargs"):
                if kwargs:
                    raise TypeError(f"get({method!r}, no_kwargs=True) calls {method} with no arguments, "
                                    f"but arguments were given too: {sorted(kwargs)}")
                return self._request(Request("call", method))
        value = self._request(Request("get", method, (), kwargs))
        if isinstance(value, MethodHandle):
            return DeviceMethod(self, value.member)
        return value

    def call(self, method: str, kwargs: Optional[Dict[str, Any]] = None, *, timeout: Optional[float] = None) -> Any:
        """Call method ``method`` now, with ``kwargs`` (or none), and an explicit deadline (``timeout``
        s instead of ``call_timeout``); a property is read."""
        _check_member(method)
        return self._request(Request("call", method, (), dict(kwargs or {})), timeout)

    def set(self, method: str, value: Any, *, timeout: Optional[float] = None) -> Any:
        """Write property ``method``."""
        _check_member(method)
        return self._request(Request("set", method, (value,)), timeout)

    # -- caller side: polling --------------------------------------------------------------------

    def start_poll(self, method: str, delay: float) -> None:
        """Poll ``method`` every ``delay`` s (one thread per member; a second call changes the interval)."""
        _check_member(method)
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not delay > 0:
            raise ValueError(f"poll delay must be a number > 0 (seconds), got {delay!r}")
        self._request(Request("start_poll", method, (float(delay),)))

    def stop_poll(self, method: Optional[str] = None) -> None:
        """Stop polling ``method`` (None: all); returns once the poll threads have ended."""
        self._request(Request("stop_poll", method))

    def pause_polls(self) -> None:
        self._request(Request("pause"))

    def resume_polls(self) -> None:
        self._request(Request("resume"))

    def poll_list(self) -> List[str]:
        """Members being polled now."""
        return self._request(Request("poll_list"))

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

    @property
    def _cached_poll_latest(self) -> dict[str, dict[str, Any]]:
        """The poll cache under the original's private name (its newer tests write it).

        The same object as the cache :meth:`poll_latest` answers from; assigning replaces its
        entries in place (None empties it).
        """
        return self._cache

    @_cached_poll_latest.setter
    def _cached_poll_latest(self, value: Optional[Dict[str, Dict[str, Any]]]) -> None:
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"_cached_poll_latest must be a dict of {{method: entry}} or None, not {type(value).__name__}")
        with self._cache_lock:
            entries = {method: dict(entry) for method, entry in (value or {}).items()}
            self._cache.clear()
            self._cache.update(entries)

    def force_poll(self, method: str, **kwargs: Any) -> Any:
        """Read ``method`` once now and record it like a poll (queue and cache); returns the value."""
        _check_member(method)
        return self._request(Request("force_poll", method, (), kwargs))

    def _on_push(self, what: str, data: Any) -> None:
        """Owner thread: a poll result from the device process updates the cache."""
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

    # -- the seed's back-side names, on a DeviceServer in this process ---------------------------
    #
    # In the device process the DeviceServer answers the pipe itself. These run the same code
    # here, on ``device`` (assign your own object to it): get__/set__ with ``pipe=False`` return
    # the seed's status dictionaries.

    def _here(self) -> DeviceServer:
        with self._backend_lock:
            if self._backend is None:
                self._backend = type(self).server_class(dataclasses.replace(self._spec, conn=None))
                self._backend.ready.set()  # no connect here: the device is whatever was assigned
            return self._backend

    @property
    def device(self) -> Any:
        """The alpyca device object of back-side calls made in this process (None until assigned)."""
        return None if self._backend is None else self._backend.device

    @device.setter
    def device(self, value: Any) -> None:
        self._here().device = value

    def get__(self, method: str, pipe: bool = True, **kwargs: Any) -> Any:  # noqa: N802
        """Run one read or method call on ``device`` with the retry policy (a method is called even
        without arguments, as the original's back side does; ``no_kwargs`` is accepted and dropped).

        ``pipe=False``: returns ``{"status": "success", "data": value}`` or ``{"status": "error",
        "message": text, "error": fields}``; otherwise the value (or the AlpacaDeviceError).
        """
        if "no_kwargs" in kwargs and kwargs.pop("no_kwargs") and kwargs:
            err = TypeError(f"get__({method!r}, no_kwargs=True) calls {method} with no arguments, but arguments were given too")
            if pipe:
                raise err
            return {"status": "error", "message": str(err)}
        return self._back_call(Request("get", method, (), kwargs), pipe, lambda b: b.calls.run("get", method, kwargs))

    def set__(self, method: str, value: Any, pipe: bool = True) -> Any:  # noqa: N802
        """Write property ``method`` on ``device``; returns like :meth:`get__`."""
        return self._back_call(Request("set", method, (value,)), pipe, lambda b: b.calls.run("set", method, {}, value))

    def _back_call(self, request: Request, pipe: bool, run: Any) -> Any:
        try:
            value = run(self._here())
        except Exception as exc:
            err = AlpacaDeviceError.from_device(self, exc, request.op, request.member)
            if err.request is None:
                err.request = request
            if pipe:
                raise err
            out: dict[str, Any] = {"status": "error", "message": str(err)}
            if isinstance(err, RemoteDeviceError):
                out["error"] = err.fields()
            return out
        return value if pipe else {"status": "success", "data": value}

    def loop__(self, method: str, delay: float) -> None:  # noqa: N802
        """The poll loop of ``method`` (started by start_poll__), run in the calling thread."""
        self._here().pollers.loop(method)

    def start_poll__(self, method: str, delay: float) -> None:  # noqa: N802
        """Start a poll thread for ``method`` (one per member; a repeat changes the interval)."""
        self._here().pollers.start(method, delay)

    def stop_poll__(self, method: Optional[str] = None, *args: Any) -> None:  # noqa: N802
        """Stop polling ``method`` (None, or a signal number when used as a handler: all)."""
        self._here().pollers.stop(method if isinstance(method, str) else None)

    def poll_list__(self) -> List[str]:  # noqa: N802
        """The members polled by the back side."""
        return self._here().pollers.methods()

    def poll_latest__(self) -> Optional[Dict[str, Dict[str, Any]]]:  # noqa: N802
        """The back side's view of the latest polls (the caller's cache is :meth:`poll_latest`)."""
        return self._here().pollers.latest()

    def listenFront__(self) -> bool:  # noqa: N802 - seed API name
        """Serve at most one request (the device process's listener); False when it should stop."""
        return self._here().listen_once()

    def stop__(self, *args: Any) -> None:  # noqa: N802
        """Stop the back side (also usable as a signal handler: it only sets a flag)."""
        self._here().stop()


def _check_member(method: Any) -> None:
    if not isinstance(method, str) or not method:
        raise TypeError(f"member name must be a non-empty string, got {method!r}")
