"""The pipe protocol between an AlpacaDevice (caller's process) and its device process.

Data flow (shaped after ``concurrent.futures.process``)::

    caller threads                      reader thread                      device process
    ──────────────                      ─────────────                      ──────────────
    request(op, payload, timeout)
      │ rid = next id; pending[rid] = Waiter
      │ send (op, rid, deadline, payload) ──────── pipe ───────────────> listener: control ops inline,
      │ wait(Waiter, until deadline)                                      calls -> worker threads
      │                                 wait([pipe, process sentinel])    (skipped if the deadline passed)
      │                                   ("reply", rid, ok, blob) <───── reply after the HTTP call
      │ <─ Waiter.set(...) ────────────── pending.pop(rid) (a late reply   poll threads:
      │                                   finds no waiter: dropped)       ("push", kind, blob) ──> on_push
      │                                 sentinel ready (child died):       (poll cache in the caller)
      │ <─ AlpacaDeviceIPCError("dead") ─ every pending Waiter failed at once
      v

* Every request carries an id, and every reply the id of its request, so a reply that comes
  after its caller timed out is dropped instead of being handed to the next caller.
* Every request carries an absolute ``time.monotonic()`` deadline (one clock for all processes
  on the host); the device process does not start work whose caller has already given up.
* The reader thread is the only reader of the pipe. It watches the process sentinel with
  :func:`multiprocessing.connection.wait`, so a killed child fails every pending call at once.
* Values cross the pipe pickled separately from the envelope, so a value that cannot be pickled
  (or unpickled) fails its own call with a clear message instead of breaking the channel.
"""

from __future__ import annotations

import itertools
import logging
import select
import threading
import time
from multiprocessing.connection import Connection, wait
from multiprocessing.reduction import ForkingPickler
from typing import Any, Callable

from astra.errors import AlpacaDeviceIPCError, RemoteDeviceError, RemoteTraceback

log = logging.getLogger(__name__)

REPLY = "reply"
PUSH = "push"


def encode(value: Any) -> bytes:
    return bytes(ForkingPickler.dumps(value))


def decode(blob: bytes) -> Any:
    return ForkingPickler.loads(blob)


def error_payload(exc: AlpacaDeviceIPCError | RemoteDeviceError, tb: str | None = None) -> dict[str, Any]:
    """The plain dict an error travels as (exception classes never cross the pipe)."""
    if isinstance(exc, AlpacaDeviceIPCError):
        return {"family": "ipc", "reason": exc.reason, "message": str(exc), "method": exc.method, "traceback": tb}
    return {"family": "remote", **exc.fields(), "traceback": tb}


def error_from_payload(info: dict[str, Any], device_name: str) -> Exception:
    """Rebuild the caller-side exception, with the device process's traceback as its cause."""
    if info.get("family") == "ipc":
        err: Exception = AlpacaDeviceIPCError(
            info.get("message") or "device process failed", reason=info.get("reason") or "broken",
            device_name=device_name, method=info.get("method"),
        )
    else:
        err = RemoteDeviceError.from_fields(info)
    if info.get("traceback"):
        err.__cause__ = RemoteTraceback(info["traceback"])
    return err


class Waiter:
    """One pending call: the reader thread fills it in, the calling thread waits on it."""

    __slots__ = ("rid", "method", "event", "ok", "value")

    def __init__(self, rid: int, method: str | None) -> None:
        self.rid = rid
        self.method = method
        self.event = threading.Event()
        self.ok = False
        self.value: Any = None

    def set(self, ok: bool, value: Any) -> None:
        self.ok, self.value = ok, value
        self.event.set()


class FrontChannel:
    """The caller's end: ids, deadlines, one reader thread, and dead-child detection.

    ``send_lock`` serialises writers on the pipe (AlpacaDevice passes its ``lock``);
    ``on_push`` receives unsolicited messages (poll results) in the reader thread;
    ``exitcode`` tells the dead child's exit code for error messages.
    """

    def __init__(
        self,
        conn: Connection,
        sentinel: int,
        *,
        device_name: str,
        send_lock: threading.Lock | threading.RLock,
        on_push: Callable[[str, Any], None],
        exitcode: Callable[[], int | None],
    ) -> None:
        self._conn = conn
        self._sentinel = sentinel
        self._device_name = device_name
        self._send_lock = send_lock
        self._on_push = on_push
        self._exitcode = exitcode
        self._ids = itertools.count(1)
        self._pending: dict[int, Waiter] = {}
        self._pending_lock = threading.Lock()
        self._failure: AlpacaDeviceIPCError | None = None
        self.stopping = False
        self.late_replies = 0
        self._thread = threading.Thread(target=self._read_loop, name=f"astra-reader[{device_name}]", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> bool:
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def failed(self) -> AlpacaDeviceIPCError | None:
        return self._failure

    def fail_all(self, reason: str, message: str) -> None:
        """Fail every pending call, and every later one, with one AlpacaDeviceIPCError reason."""
        with self._pending_lock:
            if self._failure is None:
                self._failure = AlpacaDeviceIPCError(message, reason=reason, device_name=self._device_name)
            failure = self._failure
            pending, self._pending = self._pending, {}
        for waiter in pending.values():
            err = AlpacaDeviceIPCError(
                f"{failure} (while waiting for {waiter.method or 'a reply'})",
                reason=failure.reason, device_name=self._device_name, method=waiter.method,
            )
            waiter.set(False, err)

    # -- calls -----------------------------------------------------------------------------------

    def request(self, op: str, payload: dict[str, Any], timeout: float, method: str | None = None) -> Any:
        """Send one request and wait for its own reply, at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        rid = next(self._ids)
        try:
            data = encode((op, rid, deadline, payload))
        except Exception as exc:
            raise TypeError(f"[{self._device_name}] {op} {method or ''}: arguments cannot be sent to the device process: {exc}") from exc
        waiter = Waiter(rid, method)
        with self._pending_lock:
            if self._failure is not None:
                raise self._copy_failure(method)
            self._pending[rid] = waiter
        try:
            self._send(data, deadline, method)
        except BaseException:
            with self._pending_lock:
                self._pending.pop(rid, None)
            raise
        if not waiter.event.wait(max(0.0, deadline - time.monotonic())):
            with self._pending_lock:
                self._pending.pop(rid, None)
            if not waiter.event.is_set():
                raise AlpacaDeviceIPCError(
                    f"[{self._device_name}] {op} {method or ''}: no reply from the device process within {timeout:g} s "
                    "(it may still complete the call)",
                    reason="timeout", device_name=self._device_name, method=method,
                )
        if waiter.ok:
            return waiter.value
        raise waiter.value

    def _copy_failure(self, method: str | None) -> AlpacaDeviceIPCError:
        assert self._failure is not None
        return AlpacaDeviceIPCError(str(self._failure), reason=self._failure.reason, device_name=self._device_name, method=method)

    def _send(self, data: bytes, deadline: float, method: str | None) -> None:
        def timed_out() -> AlpacaDeviceIPCError:
            return AlpacaDeviceIPCError(
                f"[{self._device_name}] {method or 'request'}: could not send to the device process before the deadline",
                reason="timeout", device_name=self._device_name, method=method,
            )

        if not self._send_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise timed_out()
        try:
            # A stopped (SIGSTOP) child stops reading: do not block on a full pipe past the deadline.
            try:
                fd = self._conn.fileno()
                _, writable, _ = select.select([], [fd], [], max(0.0, deadline - time.monotonic()))
            except (OSError, ValueError) as exc:
                raise AlpacaDeviceIPCError(
                    f"[{self._device_name}] pipe to the device process is closed", reason="closed",
                    device_name=self._device_name, method=method,
                ) from exc
            if not writable:
                raise timed_out()
            try:
                self._conn.send_bytes(data)
            except (OSError, ValueError, EOFError) as exc:
                reason = "dead" if self._exitcode() is not None else "broken"
                raise AlpacaDeviceIPCError(
                    f"[{self._device_name}] pipe to the device process failed: {type(exc).__name__}: {exc}",
                    reason=reason, device_name=self._device_name, method=method,
                ) from exc
        finally:
            self._send_lock.release()

    # -- the reader thread -----------------------------------------------------------------------

    def _read_loop(self) -> None:
        conn, sentinel = self._conn, self._sentinel
        try:
            while True:
                try:
                    ready = wait([conn, sentinel])
                except (OSError, ValueError):
                    self._fail_end("closed")
                    return
                if conn in ready:
                    try:
                        msg = conn.recv()
                    except (EOFError, OSError, ValueError):
                        # EOF comes as the child exits: let its sentinel say whether it died.
                        try:
                            dead = bool(wait([sentinel], timeout=0.5))
                        except (OSError, ValueError):
                            dead = False
                        self._fail_end("dead" if dead else None)
                        return
                    except Exception as exc:  # an envelope that cannot be unpickled: keep reading
                        log.error("[%s] undecodable message from the device process: %s", self._device_name, exc)
                        continue
                    self._dispatch(msg)
                    continue
                if sentinel in ready:
                    self._drain()
                    self._fail_end("dead")
                    return
        except BaseException:  # pragma: no cover - keep callers from hanging whatever happens
            log.exception("[%s] reader thread failed", self._device_name)
            self._fail_end("broken")

    def _drain(self) -> None:
        """Hand out the replies the child sent just before it exited."""
        try:
            while self._conn.poll(0):
                self._dispatch(self._conn.recv())
        except Exception:
            pass

    def _fail_end(self, reason: str | None) -> None:
        code = self._exitcode()
        if self.stopping:
            self.fail_all("stopped", f"[{self._device_name}] the device process was stopped")
        elif reason == "dead" or code is not None:
            self.fail_all("dead", f"[{self._device_name}] the device process died (exit code {code})")
        else:
            self.fail_all(reason or "closed", f"[{self._device_name}] the pipe to the device process was closed")

    def _dispatch(self, msg: Any) -> None:
        try:
            kind = msg[0]
        except Exception:
            log.error("[%s] malformed message from the device process: %r", self._device_name, msg)
            return
        if kind == REPLY:
            _, rid, ok, blob = msg
            with self._pending_lock:
                waiter = self._pending.pop(rid, None)
            if waiter is None:
                self.late_replies += 1
                log.debug("[%s] dropped a late reply to request %s (its caller gave up)", self._device_name, rid)
                return
            try:
                value = decode(blob)
            except Exception as exc:
                waiter.set(False, AlpacaDeviceIPCError(
                    f"[{self._device_name}] {waiter.method}: the reply cannot be unpickled here: {type(exc).__name__}: {exc}",
                    reason="broken", device_name=self._device_name, method=waiter.method,
                ))
                return
            if ok:
                waiter.set(True, value)
            else:
                waiter.set(False, error_from_payload(value, self._device_name))
        elif kind == PUSH:
            _, what, blob = msg
            try:
                self._on_push(what, decode(blob))
            except Exception:
                log.exception("[%s] could not handle a %s message", self._device_name, what)
        else:
            log.error("[%s] unknown message kind %r from the device process", self._device_name, kind)


class BackChannel:
    """The device process's end: receive requests, send replies and pushes from any thread."""

    def __init__(self, conn: Connection, lock: threading.Lock | threading.RLock) -> None:
        self.conn = conn
        self.lock = lock

    def recv(self, timeout: float) -> Any | None:
        """The next request, or None when none came within ``timeout``; EOFError when the caller is gone."""
        if not self.conn.poll(timeout):
            return None
        return self.conn.recv()

    def _send(self, msg: tuple) -> None:
        with self.lock:
            self.conn.send(msg)

    def reply(self, rid: int, ok: bool, value: Any) -> None:
        try:
            blob = encode(value)
        except Exception as exc:
            ok = False
            blob = encode({
                "family": "remote", "cause": "other", "ambiguous": False, "remote_type": type(exc).__name__,
                "remote_message": f"the result ({type(value).__name__}) cannot be pickled: {exc}",
            })
        self._send((REPLY, rid, ok, blob))

    def push(self, what: str, value: Any) -> None:
        self._send((PUSH, what, encode(value)))
