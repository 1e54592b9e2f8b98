"""The pipe protocol between an AlpacaDevice (caller's process) and its device process.

Data flow::

    caller threads                                                         device process
    ──────────────                                                         ──────────────
    request(op, payload, timeout)
      │ rid = next id; pending[rid] = Waiter
      │ send (op, rid, deadline, payload) ──────── pipe ───────────────> leader thread reads it:
      │ the first waiting thread leads: it                                control ops inline, calls
      │ polls [pipe, process sentinel] itself                             run by the thread that read
      │ and reads every message that comes;    <── reply frame (rid) ──── them (another takes over
      │ other callers' replies go to their                                listening); skipped if the
      │ Waiters (followers), a late reply                                 deadline passed
      │ finds no Waiter and is dropped                                    poll threads:
      │ sentinel ready (child died): every     <── push frame ────────── poll results -> on_push
      │ pending call fails at once                                        (poll cache in the caller)
      v
    reader thread: reads only while no call is waiting (pushes, the sentinel of an idle device)

* Every request carries an id, and every reply the id of its request, so a reply that comes
  after its caller timed out is dropped instead of being handed to the next caller.
* Every request carries an absolute ``time.monotonic()`` deadline (one clock for all processes
  on the host); the device process does not start work whose caller has already given up.
* Exactly one thread reads the pipe at a time (the read lock). A calling thread reads its own
  reply (no thread hand-off on the common path); it waits on the pipe and the process sentinel
  together, so a killed child fails every pending call at once, within the call's deadline.
* A reply is a small binary header (kind, id, ok) before the pickled value, so a value that
  cannot be unpickled fails its own call with a clear message instead of breaking the channel,
  and the value is pickled once.
"""

from __future__ import annotations

import io
import itertools
import logging
import math
import os
import pickle
import select
import socket
import struct
import threading
import time
from multiprocessing.connection import Connection
from typing import Any, Callable

from astra.errors import AlpacaDeviceIPCError, RemoteDeviceError, RemoteTraceback

log = logging.getLogger(__name__)

REPLY = "reply"
PUSH = "push"
IMAGE = "image"

_PROTOCOL = pickle.HIGHEST_PROTOCOL
_REPLY_HEADER = struct.Struct("!cQ?")  # b"R", request id, ok
_PUSH_TAG = b"P"
_IMAGE_HEADER = struct.Struct("!cQ")  # b"I", request id; then pickled metadata; then the raw pixels
#: Requests up to this size fit in the socket whenever it polls writable, so one blocking send
#: cannot outlast the deadline; bigger ones are written without blocking (FrontChannel._send_big).
_ATOMIC_SEND = 16 * 1024
_RAW_STALL_S = 30.0  # the most a raw image body may pause before the channel counts as broken


class RawImage:
    """An ImageArray read in the device process, as its raw pixel buffer (``array.array``).

    It crosses the pipe as a small header and then the pixel bytes themselves (never pickled);
    the caller rebuilds what alpyca returns: a list of rows (``array.array`` slices), or of rows
    of 3-element slices for a colour (rank 3) image.
    """

    __slots__ = ("pixels", "rank", "dim1", "dim2", "dim3")

    def __init__(self, pixels: Any, rank: int, dim1: int, dim2: int, dim3: int) -> None:
        self.pixels, self.rank, self.dim1, self.dim2, self.dim3 = pixels, rank, dim1, dim2, dim3


def rows_of(pixels: Any, rank: int, dim1: int, dim2: int) -> list:
    """alpyca's nested-list layout of a flat pixel array (see alpyca Camera.ImageArray)."""
    if rank == 3:
        return [[pixels[(i * dim2 + j) * 3:(i * dim2 + j) * 3 + 3] for j in range(dim2)] for i in range(dim1)]
    return [pixels[i * dim2:(i + 1) * dim2] for i in range(dim1)]
_READY = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR
_BIG = 1 << 16  # above this a frame is pickled behind its header in place (no concatenation copy)


def encode(value: Any) -> bytes:
    return pickle.dumps(value, _PROTOCOL)


def decode(blob: Any) -> Any:
    return pickle.loads(blob)


def _frame(header: bytes, value: Any) -> Any:
    """``header`` + the pickled value as one buffer, copying a big pickle no more than once."""
    blob = pickle.dumps(value, _PROTOCOL)
    if len(blob) < _BIG:
        return header + blob
    buf = io.BytesIO()
    buf.write(header)
    buf.write(memoryview(blob))
    return buf.getbuffer()


def parse_frame(data: Any) -> tuple:
    """A frame from the device process -> ``(REPLY, rid, ok, blob)`` or ``(PUSH, blob)``."""
    view = memoryview(data)
    tag = bytes(view[:1])
    if tag == b"R":
        _, rid, ok = _REPLY_HEADER.unpack_from(view)
        return (REPLY, rid, ok, view[_REPLY_HEADER.size:])
    if tag == _PUSH_TAG:
        return (PUSH, view[1:])
    if tag == b"I":
        _, rid = _IMAGE_HEADER.unpack_from(view)
        return (IMAGE, rid, pickle.loads(view[_IMAGE_HEADER.size:]))
    raise ValueError(f"unknown frame tag {tag!r}")


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
    """One pending call: filled in by whichever thread reads its reply; its caller waits on it."""

    __slots__ = ("rid", "method", "event", "done", "ok", "value")

    def __init__(self, rid: int, method: str | None) -> None:
        self.rid = rid
        self.method = method
        #: set when the call is answered, and to promote a waiting follower to reader
        self.event = threading.Event()
        self.done = False
        self.ok = False
        self.value: Any = None

    def set(self, ok: bool, value: Any) -> None:
        self.ok, self.value = ok, value
        self.done = True
        self.event.set()


def _poller(*fds: int) -> Any:
    p = select.poll()
    for fd in fds:
        p.register(fd, _READY)
    return p


class FrontChannel:
    """The caller's end: ids, deadlines, leader/follower reading, and dead-child detection.

    ``send_lock`` serialises writers on the pipe (AlpacaDevice passes its ``lock``);
    ``on_push`` receives unsolicited messages (poll results) in whichever thread reads them;
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
        self._ended = False
        #: the unsent rest of a request cut off by its deadline; finished before anything else is sent
        self._tail: list[memoryview] | None = None
        self.stopping = False
        self.late_replies = 0
        #: calls between registering and returning; the reader thread stands aside while > 0
        self._callers = 0
        #: held by the one thread that reads the pipe now
        self._read_lock = threading.Lock()
        #: makes "could not get the read lock -> follower" and "release -> promote" atomic
        self._lead_lock = threading.Lock()
        self._followers: list[Waiter] = []
        fd = conn.fileno()
        self._fd = fd
        self._lead_poll = _poller(fd, sentinel)  # used only under the read lock
        self._bg_poll = _poller(fd, sentinel)  # the reader thread's own
        self._out_poll = select.poll()  # used only under the send lock
        self._out_poll.register(fd, select.POLLOUT)
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
            data = pickle.dumps((op, rid, deadline, payload), _PROTOCOL)
        except Exception as exc:
            raise TypeError(f"[{self._device_name}] {op} {method or ''}: arguments cannot be sent to the device process: {exc}") from exc
        waiter = Waiter(rid, method)
        with self._pending_lock:
            if self._failure is not None:
                raise self._copy_failure(method)
            self._pending[rid] = waiter
            self._callers += 1
        try:
            self._send(data, deadline, method)
            self._await(waiter, deadline)
        finally:
            with self._pending_lock:
                self._callers -= 1
                if not waiter.done:
                    self._pending.pop(rid, None)
        if not waiter.done:
            raise AlpacaDeviceIPCError(
                f"[{self._device_name}] {op} {method or ''}: no reply from the device process within {timeout:g} s "
                "(it may still complete the call)",
                reason="timeout", device_name=self._device_name, method=method,
            )
        if waiter.ok:
            return waiter.value
        raise waiter.value

    def _await(self, waiter: Waiter, deadline: float) -> None:
        """Until ``waiter`` is answered or the deadline: read the pipe if nobody else does, else follow."""
        while not waiter.done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            with self._lead_lock:
                lead = self._read_lock.acquire(False)
                if not lead:
                    waiter.event.clear()
                    if waiter.done:
                        return
                    self._followers.append(waiter)
            if lead:
                try:
                    self._lead(waiter, deadline)
                finally:
                    self._release_read()
                continue
            waiter.event.wait(remaining)
            with self._lead_lock:
                try:
                    self._followers.remove(waiter)
                except ValueError:
                    pass

    def _release_read(self) -> None:
        """Give up the read lock and wake one follower to take it."""
        with self._lead_lock:
            self._read_lock.release()
            follower = self._followers.pop(0) if self._followers else None
        if follower is not None:
            follower.event.set()

    def _lead(self, waiter: Waiter, deadline: float) -> None:
        """Read messages (anyone's) until ``waiter`` is answered, the deadline, or the channel's end."""
        poll = self._lead_poll.poll
        while not waiter.done and not self._ended:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                events = poll(math.ceil(remaining * 1000))
            except (OSError, ValueError):
                self._fail_end("closed")
                return
            if events and not self._read_one(events):
                return

    def _read_one(self, events: list[tuple[int, int]]) -> bool:
        """Handle one poll result (under the read lock); False once the channel has ended."""
        conn_ready = sentinel_ready = False
        for fd, ev in events:
            if ev & select.POLLNVAL:
                self._fail_end("closed")
                return False
            if fd == self._fd:
                conn_ready = True
            else:
                sentinel_ready = True
        if conn_ready:
            try:
                data = self._conn.recv_bytes()
            except (EOFError, OSError, ValueError):
                # EOF comes as the child exits: let its sentinel say whether it died.
                try:
                    dead = bool(_poller(self._sentinel).poll(500))
                except (OSError, ValueError):
                    dead = False
                self._fail_end("dead" if dead else None)
                return False
            try:
                msg = parse_frame(data)
            except Exception as exc:  # a frame that cannot be read: keep reading
                log.error("[%s] undecodable message from the device process: %s", self._device_name, exc)
                return True
            if msg[0] == IMAGE:
                try:
                    msg = (IMAGE, msg[1], self._read_image(msg[2]))
                except Exception as exc:  # the stream is out of step from here on
                    log.error("[%s] image body from the device process failed: %s", self._device_name, exc)
                    self._fail_end("broken")
                    return False
            self._dispatch(msg)
            return True
        if sentinel_ready:
            self._drain()
            self._fail_end("dead")
            return False
        return True

    def _read_image(self, meta: dict[str, Any]) -> list:
        """Read the raw pixel bytes that follow an image header straight into their array."""
        import array

        itemsize = array.array(meta["typecode"]).itemsize
        count = meta["nbytes"] // itemsize
        pixels = array.array(meta["typecode"], [0]) * count if count else array.array(meta["typecode"])
        view = memoryview(pixels).cast("B")
        waiting = _poller(self._fd)
        got, total = 0, meta["nbytes"]
        while got < total:
            if not waiting.poll(int(_RAW_STALL_S * 1000)):
                raise TimeoutError(f"image body stalled for {_RAW_STALL_S:g} s at {got} of {total} bytes")
            n = os.readv(self._fd, [view[got:]])
            if n == 0:
                raise EOFError(f"pipe closed at {got} of {total} bytes of an image")
            got += n
        view.release()
        return rows_of(pixels, meta["rank"], meta["dim1"], meta["dim2"])

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
            if self._tail is not None or len(data) > _ATOMIC_SEND:
                self._send_big(data, deadline, method, timed_out)
                return
            # A stopped (SIGSTOP) child stops reading: never block on a full pipe past the deadline.
            # The common case (room in the pipe) costs one poll(0).
            try:
                ready = self._out_poll.poll(0)
                if not ready:
                    ready = self._out_poll.poll(math.ceil(max(0.0, deadline - time.monotonic()) * 1000))
            except (OSError, ValueError) as exc:
                raise AlpacaDeviceIPCError(
                    f"[{self._device_name}] pipe to the device process is closed", reason="closed",
                    device_name=self._device_name, method=method,
                ) from exc
            if not ready:
                raise timed_out()
            if ready[0][1] & select.POLLNVAL:
                raise AlpacaDeviceIPCError(
                    f"[{self._device_name}] pipe to the device process is closed", reason="closed",
                    device_name=self._device_name, method=method,
                )
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

    def _send_big(self, data: bytes, deadline: float, method: str | None, timed_out: Callable[[], Exception]) -> None:
        """Send one request in multiprocessing's framing without ever blocking past ``deadline``.

        A blocking send of a request bigger than the socket's free space would wait for a stopped
        child for ever. A frame cut off by the deadline keeps the stream whole: its rest is sent
        before anything else, and the device process then skips it (its deadline has passed).
        """
        n = len(data)
        header = struct.pack("!i", n) if n <= 0x7FFFFFFF else struct.pack("!iQ", -1, n)
        try:
            sock = socket.socket(fileno=os.dup(self._fd))  # a dup: MSG_DONTWAIT without touching the fd's mode
        except (OSError, ValueError) as exc:
            raise AlpacaDeviceIPCError(
                f"[{self._device_name}] pipe to the device process is closed", reason="closed",
                device_name=self._device_name, method=method,
            ) from exc
        try:
            if self._tail is not None:
                self._tail = self._write_until(sock, self._tail, deadline) or None
                if self._tail is not None:
                    raise timed_out()
            left = self._write_until(sock, [memoryview(header), memoryview(data)], deadline)
            if left:
                if len(left) < 2 or len(left[0]) < len(header):  # part of the frame went out
                    self._tail = left
                raise timed_out()
        except OSError as exc:
            reason = "dead" if self._exitcode() is not None else "broken"
            raise AlpacaDeviceIPCError(
                f"[{self._device_name}] pipe to the device process failed: {type(exc).__name__}: {exc}",
                reason=reason, device_name=self._device_name, method=method,
            ) from exc
        finally:
            sock.close()

    def _write_until(self, sock: socket.socket, bufs: list[memoryview], deadline: float) -> list[memoryview]:
        """Write ``bufs`` in order, waiting for room only until ``deadline``; returns what is left unsent."""
        while bufs:
            try:
                sent = sock.send(bufs[0], socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
            except BlockingIOError:
                sent = 0
            if sent:
                bufs[0] = bufs[0][sent:]
                if not len(bufs[0]):
                    bufs.pop(0)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._out_poll.poll(math.ceil(remaining * 1000)):
                break
        return bufs

    # -- the reader thread -----------------------------------------------------------------------

    def _read_loop(self) -> None:
        """Read while no call waits (pushes, an idle device's death); stand aside while callers read."""
        poll = self._bg_poll.poll
        try:
            while not self._ended:
                if self._callers > 0:  # a calling thread reads; check back now and then
                    time.sleep(0.02)
                    continue
                try:
                    events = poll(100)
                except (OSError, ValueError):
                    self._fail_end("closed")
                    return
                if not events:
                    continue
                with self._lead_lock:
                    got = self._read_lock.acquire(False)
                if not got:
                    continue
                try:
                    events = poll(0)  # a caller may have read it meanwhile
                    if events:
                        self._read_one(events)
                finally:
                    self._release_read()
        except BaseException:  # pragma: no cover - keep callers from hanging whatever happens
            log.exception("[%s] reader thread failed", self._device_name)
            self._fail_end("broken")

    def _drain(self) -> None:
        """Hand out the replies the child sent just before it exited."""
        try:
            while self._conn.poll(0):
                self._dispatch(parse_frame(self._conn.recv_bytes()))
        except Exception:
            pass

    def _fail_end(self, reason: str | None) -> None:
        self._ended = True
        code = self._exitcode()
        if self.stopping:
            self.fail_all("stopped", f"[{self._device_name}] the device process was stopped")
        elif reason == "dead" or code is not None:
            self.fail_all("dead", f"[{self._device_name}] the device process died (exit code {code})")
        else:
            self.fail_all(reason or "closed", f"[{self._device_name}] the pipe to the device process was closed")

    def _dispatch(self, msg: Any) -> None:
        kind = msg[0]
        if kind == REPLY or kind == IMAGE:
            rid = msg[1]
            with self._pending_lock:
                waiter = self._pending.pop(rid, None)
            if waiter is None:
                self.late_replies += 1
                log.debug("[%s] dropped a late reply to request %s (its caller gave up)", self._device_name, rid)
                return
            if kind == IMAGE:  # already rebuilt from its raw pixels
                waiter.set(True, msg[2])
                return
            _, rid, ok, blob = msg
            try:
                value = pickle.loads(blob)
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
            try:
                what, value = pickle.loads(msg[1])
                self._on_push(what, value)
            except Exception:
                log.exception("[%s] could not handle a message pushed by the device process", self._device_name)
        else:
            log.error("[%s] unknown message kind %r from the device process", self._device_name, kind)


class BackChannel:
    """The device process's end: receive requests, send replies and pushes from any thread."""

    def __init__(self, conn: Connection, lock: threading.Lock | threading.RLock) -> None:
        self.conn = conn
        self.lock = lock
        self._in_poll = _poller(conn.fileno())  # used by the one listening thread at a time

    def recv(self, timeout: float) -> Any | None:
        """The next request, or None when none came within ``timeout``; EOFError when the caller is gone."""
        if not self._in_poll.poll(math.ceil(timeout * 1000)):
            return None
        return pickle.loads(self.conn.recv_bytes())

    def _send(self, frame: Any) -> None:
        with self.lock:
            self.conn.send_bytes(frame)

    def reply(self, rid: int, ok: bool, value: Any) -> None:
        if ok and isinstance(value, RawImage):
            self._send_image(rid, value)
            return
        header = _REPLY_HEADER.pack(b"R", rid, ok)
        try:
            frame = _frame(header, value)
        except Exception as exc:
            frame = _frame(_REPLY_HEADER.pack(b"R", rid, False), {
                "family": "remote", "cause": "other", "ambiguous": False, "remote_type": type(exc).__name__,
                "remote_message": f"the result ({type(value).__name__}) cannot be pickled: {exc}",
            })
        self._send(frame)

    def _send_image(self, rid: int, image: RawImage) -> None:
        """Header frame, then the pixel bytes written as they are (no pickling, no copy)."""
        view = memoryview(image.pixels).cast("B")
        meta = {"typecode": image.pixels.typecode, "rank": image.rank, "dim1": image.dim1, "dim2": image.dim2,
                "dim3": image.dim3, "nbytes": view.nbytes}
        frame = _IMAGE_HEADER.pack(b"I", rid) + pickle.dumps(meta, _PROTOCOL)
        fd = self.conn.fileno()
        with self.lock:
            self.conn.send_bytes(frame)
            sent = 0
            while sent < view.nbytes:
                sent += os.write(fd, view[sent:])

    def push(self, what: str, value: Any) -> None:
        self._send(_frame(_PUSH_TAG, (what, value)))
