"""The device process: a DeviceServer serves one alpyca device to its AlpacaDevice over the pipe.

::

    pipe ──> listener (the process's main thread; one)
               │ reads each request, looks its op up in DeviceServer.OPS:
               ├─ "listener" ops (poll control, stop): run at once, so they are never stuck
               │   behind a slow call
               ├─ "pool" ops (get, call, set, force_poll): ThreadPoolExecutor(workers); a call whose
               │   caller gave up before it started is skipped, never sent to the device
               └─ "thread" ops (stop_poll, which joins poll threads): a thread of their own
             poll threads (astra.polling) ──push──> caller's poll cache
             every reply and push leaves under one send lock (ServerChannel)
    alpyca device (astra.alpyca, astra.calls) ──HTTP──> Alpaca server

Only a :class:`DeviceSpec` crosses from the caller to the device process: the device's
address and options, its end of the pipe and the queue.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Callable, NamedTuple

from astra import alpyca
from astra.calls import DeviceCalls
from astra.errors import (
    AlpacaDeviceError,
    DeviceStopped,
    DeviceTimeout,
    RemoteDeviceError,
    RemoteOther,
    classify,
    format_traceback,
)
from astra.polling import Pollers, utcnow
from astra.protocol import MethodHandle, RawImage, Request, decode_request, encode_push, encode_reply
from astra.reporting import Reporter
from astra.retry import RetryPolicy

_monotonic = time.monotonic
_IN = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR


@dataclass
class DeviceSpec:
    """Everything a device process needs, and nothing of the caller's side."""

    ip: str
    device_type: str
    device_number: int
    device_name: str
    queue: Any = None
    #: the device process's end of the pipe (None: no pipe, e.g. back-side calls in the caller's process)
    conn: Connection | None = None
    connectable: bool = True
    debug: bool = False
    http_timeout: float = 5.0
    connect_timeout: float = 30.0
    poll_max_backoff_s: float = 10.0
    image_timeout: float = 60.0
    workers: int = 4
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def type_key(self) -> str:
        return alpyca.type_key(self.device_type)

    @property
    def metadata(self) -> dict[str, Any]:
        return {"ip": self.ip, "device_type": self.device_type, "device_number": self.device_number,
                "device_name": self.device_name}


class Call(NamedTuple):
    """A request as the device process holds it: its id, its caller's deadline, the request."""

    rid: int
    deadline: float
    request: Request


class Op(NamedTuple):
    """How one op is served: ``handler(server, call)`` returns the reply value or raises."""

    handler: Callable[["DeviceServer", Call], Any]
    #: "listener" (at once), "pool" (the call pool) or "thread" (a thread of its own)
    runs: str
    #: waits for the connect to finish; the first such call gets a failed connect's error
    device: bool = False


_LATER = object()  # a handler's value meaning "the reply is sent later"


class ServerChannel:
    """The device process's end of the pipe: requests in, replies and pushes out (one send lock)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()

    def reply(self, rid: int, ok: bool, value: Any) -> None:
        if ok and isinstance(value, RawImage):
            frame, pixels = value.header(rid)
            fd = self.conn.fileno()
            with self.lock:
                self.conn.send_bytes(frame)
                sent = 0
                while sent < pixels.nbytes:
                    sent += os.write(fd, pixels[sent:])
            return
        try:
            frame = encode_reply(rid, ok, value)
        except Exception as exc:
            frame = encode_reply(rid, False, RemoteOther(
                f"the result ({type(value).__name__}) cannot be pickled: {exc}", remote_type=type(exc).__name__,
                remote_message=f"the result ({type(value).__name__}) cannot be pickled: {exc}"))
        with self.lock:
            self.conn.send_bytes(frame)

    def push(self, what: str, value: Any) -> None:
        frame = encode_push(what, value)
        with self.lock:
            self.conn.send_bytes(frame)


class DeviceServer:
    """Serves one device: the listener, the call pool, the pollers and the initial connect."""

    def __init__(self, spec: DeviceSpec) -> None:
        self.spec = spec
        self.name = spec.device_name
        self.type_key = spec.type_key
        self.report = Reporter(spec.queue, spec.metadata, debug=spec.debug)
        self.stopping = threading.Event()
        #: set once the device object is made and the initial connect has finished (well or not)
        self.ready = threading.Event()
        self.calls = DeviceCalls(self.name, spec.retry, self.report, self.stopping)
        self.pollers = Pollers(
            self.name, read=self.calls.attempt_once, push=self.push, report=self.report, stopping=self.stopping,
            ready=self.ready, max_backoff_s=spec.poll_max_backoff_s, join_timeout=spec.http_timeout + 1.0,
        )
        self._channel = ServerChannel(spec.conn) if spec.conn is not None else None
        self._pool: ThreadPoolExecutor | None = None
        self._busy = 0  # calls running in the pool
        self._busy_lock = threading.Lock()
        self._connect_error: RemoteDeviceError | None = None
        self._connect_lock = threading.Lock()
        self._stop_rid: int | None = None
        self._parent: int | None = None
        self._listen: Any = None
        self._wake: tuple[int, int] | None = None

    @property
    def device(self) -> Any:
        """The alpyca device object (made by :meth:`make_device` when serving; assignable)."""
        return self.calls.device

    @device.setter
    def device(self, value: Any) -> None:
        self.calls.device = value

    def make_device(self) -> Any:
        spec = self.spec
        return alpyca.make_device(self.type_key, spec.ip, spec.device_number, http_timeout=spec.http_timeout,
                                  image_timeout=spec.image_timeout)

    # -- the device process's main loop ------------------------------------------------------------

    def serve(self) -> None:
        """Make the device, connect, serve requests until stopped; run in the process's main thread."""
        if self._channel is None:
            raise RuntimeError("DeviceServer.serve needs the device's end of a pipe (DeviceSpec.conn)")
        self._parent = os.getppid()
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        self._wake = (wake_r, wake_w)
        self._listen = select.poll()
        self._listen.register(self._channel.conn.fileno(), _IN)
        self._listen.register(wake_r, _IN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the caller owns Ctrl-C
        signal.signal(signal.SIGTERM, self.stop)
        signal.set_wakeup_fd(wake_w)  # a signal wakes the listener at once
        self._pool = ThreadPoolExecutor(self.spec.workers, thread_name_prefix="astra-call")
        threading.Thread(target=self._connect, name="astra-connect", daemon=True).start()
        try:
            while self.listen_once():
                pass
        finally:
            self._shutdown()
        if self._busy:
            self._exit_now()

    def stop(self, *args: Any) -> None:
        """Ask the server to stop (also its SIGTERM handler: it only sets a flag)."""
        self.stopping.set()
        if self._wake is not None:
            try:
                os.write(self._wake[1], b"s")
            except OSError:
                pass

    def listen_once(self, timeout: float = 0.5) -> bool:
        """Read and route at most one request; False when the process should stop."""
        if self.stopping.is_set() or self._listen is None:
            return False
        if os.getppid() != self._parent:
            self.report.log("warning", "the calling process is gone; stopping")
            return False
        assert self._channel is not None and self._wake is not None
        conn = self._channel.conn
        events = self._listen.poll(int(timeout * 1000))
        if not events:
            return True
        if any(fd == self._wake[0] for fd, _ in events):
            try:
                while os.read(self._wake[0], 512):
                    pass
            except OSError:
                pass
        if not any(fd == conn.fileno() for fd, _ in events):
            return not self.stopping.is_set()
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            self.report.log("info", "the caller closed the pipe; stopping")
            return False
        try:
            call = Call(*decode_request(data))
        except Exception as exc:
            self.report.log("error", f"malformed request ignored: {type(exc).__name__}: {exc}")
            return True
        self._dispatch(call)
        return not self.stopping.is_set()

    def _dispatch(self, call: Call) -> None:
        op = self.OPS.get(call.request.op)
        if op is None:
            self._reply(call.rid, False, RemoteOther(
                f"[{self.name}] unknown request {call.request.op!r}", method=call.request.member, device_name=self.name,
                remote_type="ValueError", remote_message=f"unknown request {call.request.op!r}"))
        elif op.runs == "pool":
            assert self._pool is not None
            self._pool.submit(self._serve, op, call)
        elif op.runs == "listener":
            self._serve(op, call)
        else:
            threading.Thread(target=self._serve, args=(op, call), name=f"astra-{call.request.op}", daemon=True).start()

    def _serve(self, op: Op, call: Call) -> None:
        """Run one call and reply: the error (with its traceback as text) when it fails."""
        request = call.request
        pooled = op.runs == "pool"
        if pooled:
            with self._busy_lock:
                self._busy += 1
        try:
            if self.stopping.is_set():
                raise DeviceStopped(f"[{self.name}] {request.describe()}: the device process is stopping", device_name=self.name)
            if _monotonic() > call.deadline:
                self.report.log("warning", f"skipped {request.describe()}: its caller gave up before it started")
                raise DeviceTimeout(f"[{self.name}] {request.describe()}: deadline passed before it started", device_name=self.name)
            if op.device:
                self._await_device(call)
            value = op.handler(self, call)
            if value is _LATER:
                return
            self._reply(call.rid, True, value)
        except AlpacaDeviceError as err:
            self._reply(call.rid, False, _with_traceback(err))
        except Exception as exc:  # a bug or a surprise in the device object: the caller gets it
            err = RemoteOther(f"[{self.name}] {request.describe()}: {type(exc).__name__}: {exc}", ambiguous=True,
                              method=request.member, device_name=self.name, remote_type=type(exc).__name__,
                              remote_message=str(exc))
            err.remote_traceback = format_traceback(exc)
            self._reply(call.rid, False, err)
        finally:
            if pooled:
                with self._busy_lock:
                    self._busy -= 1

    def _await_device(self, call: Call) -> None:
        if not self.ready.is_set() and not self.ready.wait(max(0.0, call.deadline - _monotonic())):
            raise DeviceTimeout(f"[{self.name}] {call.request.describe()}: still connecting at the deadline", device_name=self.name)
        if self._connect_error is not None:
            with self._connect_lock:
                err, self._connect_error = self._connect_error, None
            if err is not None:
                raise err

    def _reply(self, rid: int, ok: bool, value: Any) -> None:
        if self._channel is None:
            return
        try:
            self._channel.reply(rid, ok, value)
        except (OSError, ValueError, EOFError):
            self.stop()  # the caller is gone

    def push(self, what: str, value: Any) -> None:
        """Send an unsolicited message (a poll result) to the caller."""
        if self._channel is None:
            return
        try:
            self._channel.push(what, value)
        except (OSError, ValueError, EOFError):
            self.stop()
        except Exception as exc:  # e.g. a value that cannot be pickled
            self.report.log("error", f"could not push {what}: {exc}")

    # -- ops: the handler table ---------------------------------------------------------------------

    def _get(self, call: Call) -> Any:
        """A property's value, a method's result when arguments were given, else a MethodHandle
        (nothing is sent: the caller gets a callable that makes the call when invoked)."""
        r = call.request
        if not r.kwargs and self.calls.is_method(r.member):
            return MethodHandle(r.member)
        op = "image" if r.member == "ImageArray" and not r.kwargs and self.type_key == "camera" else "get"
        return self.calls.run(op, r.member, r.kwargs, deadline=call.deadline)

    def _call(self, call: Call) -> Any:
        """Call a method now, with whatever arguments came (none too); a property is read."""
        r = call.request
        return self.calls.run("call", r.member, r.kwargs, deadline=call.deadline, args=tuple(r.args))

    def _set(self, call: Call) -> None:
        r = call.request
        self.calls.run("set", r.member, {}, r.args[0], deadline=call.deadline)

    def _force_poll(self, call: Call) -> Any:
        r = call.request
        try:
            value = self.calls.run("get", r.member, r.kwargs, deadline=call.deadline)
        except RemoteDeviceError as err:
            self.pollers.record_error(r.member, err, utcnow())
            raise
        self.pollers.record(r.member, value, utcnow())
        return value

    def _start_poll(self, call: Call) -> None:
        self.pollers.start(call.request.member, call.request.args[0])

    def _stop_poll(self, call: Call) -> None:
        stopped = self.pollers.stop(call.request.member)
        if stopped:
            self.report.log("info", f"stopped polling {', '.join(stopped)}")

    def _pause(self, call: Call) -> None:
        self.pollers.set_paused(True)

    def _resume(self, call: Call) -> None:
        self.pollers.set_paused(False)

    def _poll_list(self, call: Call) -> list[str]:
        return self.pollers.methods()

    def _stop(self, call: Call) -> Any:
        self._stop_rid = call.rid  # answered once the polls have stopped (see _shutdown)
        self.stopping.set()
        return _LATER

    OPS: dict[str, Op] = {
        "get": Op(_get, "pool", device=True),
        "call": Op(_call, "pool", device=True),
        "set": Op(_set, "pool", device=True),
        "force_poll": Op(_force_poll, "pool", device=True),
        "start_poll": Op(_start_poll, "listener"),
        "stop_poll": Op(_stop_poll, "thread"),
        "pause": Op(_pause, "listener"),
        "resume": Op(_resume, "listener"),
        "poll_list": Op(_poll_list, "listener"),
        "stop": Op(_stop, "listener"),
    }

    # -- connect and shutdown ----------------------------------------------------------------------

    def _connect(self) -> None:
        """Make the device object and, if connectable, connect (Platform 7 Connect, else Connected=True)."""
        spec = self.spec
        try:
            if self.device is None:
                try:
                    self.device = self.make_device()
                except Exception as exc:
                    err = RemoteDeviceError.from_fields(dict(classify(exc), method="create", device_name=self.name, ambiguous=False))
                    err.__cause__ = exc
                    self._fail_connect(err)
                    return
            if spec.connectable:
                self.calls.connect(self.type_key, spec.connect_timeout, f"{spec.device_type} {spec.device_number} at {spec.ip}")
        except RemoteDeviceError as err:
            self._fail_connect(err)
        except Exception as exc:  # pragma: no cover - never leave callers waiting for ready
            err = RemoteOther(str(exc), device_name=self.name, remote_type=type(exc).__name__, remote_message=str(exc))
            err.__cause__ = exc
            self._fail_connect(err)
        finally:
            self.ready.set()

    def _fail_connect(self, err: RemoteDeviceError) -> None:
        """The first call gets the failure (with its traceback), the queue a log line."""
        fields = dict(err.fields(), remote_message=f"initial connect failed: {err.remote_message}")
        first = RemoteDeviceError.from_fields(fields)
        first.remote_traceback = format_traceback(err)
        with self._connect_lock:
            self._connect_error = first
        self.report.log("error", f"initial connect failed: {err}")

    def _shutdown(self) -> None:
        """After the listener ends: stop polls, answer the stop request, close the pipe."""
        self.stopping.set()
        try:
            self.pollers.stop(None, join_timeout=1.0)
            self.report.log("info", "device process stopping")
            if self._stop_rid is not None:
                self._reply(self._stop_rid, True, None)
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            if self._channel is not None:
                try:
                    self._channel.conn.close()
                except OSError:
                    pass
            # From here on a terminate() must end us at once, even while the queue flushes.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.set_wakeup_fd(-1)  # the wake-up pipe stays open: a pool thread may still stop() us

    def _exit_now(self) -> None:
        """End the process although a call still runs (its caller was told): the pool's threads
        would hold the interpreter's exit until their HTTP requests end."""
        queue = self.spec.queue
        try:
            if hasattr(queue, "join_thread"):  # a multiprocessing.Queue: let its feeder flush
                queue.close()
                queue.join_thread()
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:
                    pass
            os._exit(0)


def _with_traceback(err: AlpacaDeviceError) -> AlpacaDeviceError:
    """A remote error crosses with the device process's traceback as text (rebuilt as ``__cause__``)."""
    if isinstance(err, RemoteDeviceError) and err.remote_traceback is None:
        err.remote_traceback = format_traceback(err)
    return err
