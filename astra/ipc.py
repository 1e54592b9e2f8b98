"""The caller's end of the pipe to a device process: one owner thread, one future per call.

Shaped like CPython's ``concurrent.futures.process``: one thread owns the reading end, matches
each reply to its call by request id, and turns a dead child into one error for every pending
call; the caller threads only wait, each on its own future, each with its own deadline.

Data flow::

    caller threads                   owner thread (one per pipe)               device process
    ──────────────                   ───────────────────────────               ──────────────
    request(Request, timeout)
      rid = next id
      pending[rid] = Pending(request)
      frame written under the send  ──────────────── pipe ──────────────────> DeviceServer
      lock, never blocking past the                                           (astra.server)
      deadline (a frame cut off by                                                  │
      it is finished by the next                                                    │
      writer, the child skips it)                                                   │
      Pending.wait(deadline) <── set ─┐ poll [pipe, process sentinel, wake-up]     │
                                      │ reply(rid): pending.pop(rid)  <── reply ───┤
                                      │   no Pending: a late reply, dropped        │
                                      │ push: on_push (the poll cache) <── push ───┘
                                      │ sentinel, EOF or a broken frame: ONE error
                                      └ (DeviceDead / BrokenChannel / DeviceStopped)
                                        fails every pending call, and every later one

Why the callers write their own requests instead of handing them to the owner (CPython's pool
hands them to its manager thread): the hand-off is one more thread wake-up per call, measured at
+17-24 us from ``request()`` until the child has the request (bench.ipc_breakdown, four
alternated pairs of runs), and on these 2-core machines thread wake-ups are the dearest step of
a call after the process wake-ups (bench/README.md). Writing needs no reply matching, so it needs
no owner: the send lock keeps frames whole, and every write is non-blocking, so a stopped
(SIGSTOP) child with a full pipe costs a caller at most its deadline, whatever the frame's size.

Deadlines are absolute ``time.monotonic()`` and travel with the request (astra.protocol).
"""

from __future__ import annotations

import array
import errno
import itertools
import logging
import math
import os
import pickle
import select
import socket
import threading
import time
from multiprocessing.connection import Connection
from typing import Any, Callable

from astra.errors import (
    AlpacaDeviceError,
    AlpacaDeviceIPCError,
    BrokenChannel,
    ChannelClosed,
    DeviceDead,
    DeviceStopped,
    DeviceTimeout,
)
from astra.protocol import IMAGE, IMAGE_HEADER, PUSH, REPLY, REPLY_HEADER, Request, encode_request, frame_length, rows_of

log = logging.getLogger(__name__)

_IN = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR
_SEND_FLAGS = socket.MSG_DONTWAIT | getattr(socket, "MSG_NOSIGNAL", 0)
#: below this a frame goes out as one buffer (header + body joined); above, as two, uncopied
_JOIN_BELOW = 64 * 1024
_RAW_STALL_S = 30.0  # the most a raw image body may pause before the channel counts as broken
_monotonic = time.monotonic


class Pending:
    """One call waiting for its reply: the smallest future (one lock, released when answered).

    Set at most once, by whichever thread took it out of the pending table.
    """

    __slots__ = ("request", "_done", "ok", "value")

    def __init__(self, request: Request) -> None:
        self.request = request
        self._done = threading.Lock()
        self._done.acquire()
        self.ok = False
        self.value: Any = None

    def set(self, ok: bool, value: Any) -> None:
        self.ok, self.value = ok, value
        self._done.release()

    def wait(self, timeout: float) -> bool:
        """True once answered; False when ``timeout`` passed first."""
        return self._done.acquire(True, timeout) if timeout > 0 else self._done.acquire(False)


class DeviceChannel:
    """The caller's end: request ids, deadlines, the owner thread, dead-child detection.

    ``send_lock`` serialises writers on the pipe (AlpacaDevice passes its ``lock``);
    ``on_push`` receives poll results in the owner thread; ``exitcode`` tells the child's exit
    code (None while it runs) for error messages.
    """

    def __init__(
        self,
        conn: Connection,
        sentinel: int,
        *,
        device_name: str,
        send_lock: threading.Lock,
        on_push: Callable[[str, Any], None],
        exitcode: Callable[[], int | None],
    ) -> None:
        self._conn = conn
        self._fd = conn.fileno()
        self._sentinel = sentinel
        self._name = device_name
        self._send_lock = send_lock
        self._on_push = on_push
        self._exitcode = exitcode
        self._ids = itertools.count(1)
        self._pending: dict[int, Pending] = {}
        self._lock = threading.Lock()  # the pending table and the failure
        self._failure: AlpacaDeviceIPCError | None = None
        # a dup of the pipe's fd: MSG_DONTWAIT writes without changing the fd's blocking mode
        self._sock = socket.socket(fileno=os.dup(self._fd))
        self._out = select.poll()  # used under the send lock only
        self._out.register(self._fd, select.POLLOUT)
        #: the unsent rest of a frame cut off by its deadline; finished before anything else is sent
        self._tail: list[memoryview] | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self.stopping = False
        self.late_replies = 0
        self._owner = threading.Thread(target=self._own, name=f"astra-owner[{device_name}]", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._owner.start()

    @property
    def failure(self) -> AlpacaDeviceIPCError | None:
        """The one error that ended the channel (None while it works)."""
        return self._failure

    def fail_all(self, failure: AlpacaDeviceIPCError) -> None:
        """End the channel with ``failure``: every pending call, and every later one, fails with it."""
        with self._lock:
            if self._failure is None:
                self._failure = failure
            pending, self._pending = self._pending, {}
        for call in pending.values():
            call.set(False, self._failure)

    def close(self, timeout: float = 2.0) -> None:
        """Stop the owner thread and release what the channel holds (the pipe itself is the caller's)."""
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        if self._owner.ident is not None:
            self._owner.join(timeout)
        if self._owner.is_alive():  # pragma: no cover - stuck in a read; its fds must stay valid
            log.warning("[%s] the owner thread did not end within %.3g s", self._name, timeout)
            return
        self._sock.close()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    # -- calls -----------------------------------------------------------------------------------

    def request(self, request: Request, timeout: float) -> Any:
        """Send ``request`` and wait for its own reply, at most ``timeout`` seconds."""
        deadline = _monotonic() + timeout
        rid = next(self._ids)
        try:
            data = encode_request(rid, deadline, request)
        except Exception as exc:
            raise TypeError(f"[{self._name}] {request.describe()}: arguments cannot be sent to the device process: {exc}") from exc
        call = Pending(request)
        with self._lock:
            failure = self._failure
            if failure is None:
                self._pending[rid] = call
        if failure is not None:
            raise failure.for_request(request) from failure
        try:
            self._send(data, deadline, request)
            answered = call.wait(deadline - _monotonic())
        except BaseException:
            with self._lock:
                self._pending.pop(rid, None)
            raise
        if not answered:
            with self._lock:
                answered = self._pending.pop(rid, None) is None  # answered meanwhile: it was set
            if answered:
                call.wait(1.0)
            else:
                raise DeviceTimeout(
                    f"[{self._name}] {request.describe()}: no reply from the device process within {timeout:g} s "
                    "(it may still complete the call)", request=request, device_name=self._name,
                )
        if call.ok:
            return call.value
        err = call.value
        if err is self._failure:
            raise err.for_request(request, f"while waiting for {request.describe()}") from err
        if isinstance(err, AlpacaDeviceError):
            err.request = request
        raise err

    def _send(self, data: bytes, deadline: float, request: Request) -> None:
        if not self._send_lock.acquire(True, max(0.0, deadline - _monotonic())):
            raise self._send_timeout(request)
        try:
            if self._tail is not None:
                self._tail = self._write(self._tail, deadline, request) or None
                if self._tail is not None:
                    raise self._send_timeout(request)
            header = frame_length(len(data))
            bufs = [memoryview(header + data)] if len(data) < _JOIN_BELOW else [memoryview(header), memoryview(data)]
            size = len(header) + len(data)
            left = self._write(bufs, deadline, request)
            if left:
                if sum(map(len, left)) < size:  # part of the frame went out: the rest must follow
                    self._tail = left
                raise self._send_timeout(request)
        finally:
            self._send_lock.release()

    def _write(self, bufs: list[memoryview], deadline: float, request: Request) -> list[memoryview]:
        """Write ``bufs`` in order without blocking, waiting for room until ``deadline``; returns what is left."""
        send = self._sock.send
        try:
            while bufs:
                try:
                    sent = send(bufs[0], _SEND_FLAGS)
                except BlockingIOError:
                    sent = 0
                if sent:
                    if sent == len(bufs[0]):
                        bufs.pop(0)
                    else:
                        bufs[0] = bufs[0][sent:]
                    continue
                remaining = deadline - _monotonic()
                if remaining <= 0 or not self._out.poll(math.ceil(remaining * 1000)):
                    break
        except (OSError, ValueError) as exc:
            if isinstance(exc, ValueError) or getattr(exc, "errno", None) == errno.EBADF:  # closed under us
                raise ChannelClosed(f"[{self._name}] the pipe to the device process is closed",
                                    request=request, device_name=self._name) from exc
            kind = DeviceDead if self._exitcode() is not None else BrokenChannel
            raise kind(f"[{self._name}] pipe to the device process failed: {type(exc).__name__}: {exc}",
                       request=request, device_name=self._name) from exc
        return bufs

    def _send_timeout(self, request: Request) -> DeviceTimeout:
        return DeviceTimeout(f"[{self._name}] {request.describe()}: could not send to the device process before the deadline",
                             request=request, device_name=self._name)

    # -- the owner thread ------------------------------------------------------------------------

    def _own(self) -> None:
        """Read every frame the device process sends until the channel ends."""
        poll = select.poll()
        for fd in (self._fd, self._sentinel, self._wake_r):
            poll.register(fd, _IN)
        fd_pipe, fd_sentinel, fd_wake = self._fd, self._sentinel, self._wake_r
        try:
            while True:
                ready = dict(poll.poll())
                if fd_wake in ready:
                    return
                if any(ev & select.POLLNVAL for ev in ready.values()):
                    raise _Ended(ChannelClosed, "the pipe to the device process was closed")
                if fd_pipe in ready:
                    self._read_frame()
                elif fd_sentinel in ready:
                    raise _Ended(DeviceDead, None)
        except _Ended as end:
            self._end(end.kind, end.message)
        except BaseException as exc:  # pragma: no cover - never leave callers waiting, whatever happens
            log.exception("[%s] owner thread failed", self._name)
            self._end(BrokenChannel, f"the owner thread failed: {type(exc).__name__}: {exc}")

    def _read_frame(self) -> None:
        """Read and route one frame; raises _Ended when the channel is over."""
        try:
            data = self._conn.recv_bytes()
        except (EOFError, OSError, ValueError):
            # EOF comes as the child exits: its sentinel tells whether it died.
            try:
                dead = bool(_poller(self._sentinel).poll(500))
            except (OSError, ValueError):
                dead = False
            raise _Ended(DeviceDead, None) if dead else _Ended(ChannelClosed, "the pipe to the device process was closed")
        tag = data[0] if data else None
        if tag == REPLY:
            _, rid, ok = REPLY_HEADER.unpack_from(data)
            call = self._take(rid)
            if call is not None:
                try:
                    value = pickle.loads(memoryview(data)[REPLY_HEADER.size:])
                except Exception as exc:
                    call.set(False, BrokenChannel(
                        f"[{self._name}] {call.request.describe()}: the reply cannot be unpickled here: {type(exc).__name__}: {exc}",
                        request=call.request, device_name=self._name))
                else:
                    call.set(ok, value)
        elif tag == PUSH:
            try:
                what, value = pickle.loads(memoryview(data)[1:])
                self._on_push(what, value)
            except Exception:
                log.exception("[%s] could not handle a message pushed by the device process", self._name)
        elif tag == IMAGE:
            _, rid = IMAGE_HEADER.unpack_from(data)
            try:
                rows = self._read_image(pickle.loads(memoryview(data)[IMAGE_HEADER.size:]))
            except Exception as exc:  # the stream is out of step from here on
                raise _Ended(BrokenChannel, f"an image body from the device process failed: {type(exc).__name__}: {exc}") from exc
            call = self._take(rid)
            if call is not None:
                call.set(True, rows)
        else:
            log.error("[%s] unknown frame %r from the device process", self._name, bytes(data[:1]))

    def _take(self, rid: int) -> Pending | None:
        with self._lock:
            call = self._pending.pop(rid, None)
        if call is None:
            self.late_replies += 1
            log.debug("[%s] dropped a late reply to request %s (its caller gave up)", self._name, rid)
        return call

    def _read_image(self, meta: dict[str, Any]) -> list:
        """Read the raw pixel bytes that follow an image header straight into their array."""
        itemsize = array.array(meta["typecode"]).itemsize
        count = meta["nbytes"] // itemsize
        pixels = array.array(meta["typecode"], [0]) * count if count else array.array(meta["typecode"])
        view = memoryview(pixels).cast("B")
        waiting = _poller(self._fd, self._sentinel)
        got, total = 0, meta["nbytes"]
        while got < total:
            events = waiting.poll(int(_RAW_STALL_S * 1000))
            if not events:
                raise TimeoutError(f"image body stalled for {_RAW_STALL_S:g} s at {got} of {total} bytes")
            if not any(fd == self._fd for fd, _ in events):
                raise EOFError(f"the device process ended at {got} of {total} bytes of an image")
            n = os.readv(self._fd, [view[got:]])
            if n == 0:
                raise EOFError(f"pipe closed at {got} of {total} bytes of an image")
            got += n
        view.release()
        return rows_of(pixels, meta["rank"], meta["dim1"], meta["dim2"])

    def _end(self, kind: type[AlpacaDeviceIPCError], message: str | None) -> None:
        """The channel is over: hand out what the child sent before it went, then fail the rest once."""
        if kind is DeviceDead:
            self._drain()
        if self.stopping:
            failure: AlpacaDeviceIPCError = DeviceStopped(f"[{self._name}] the device process was stopped", device_name=self._name)
        elif kind is DeviceDead or self._exitcode() is not None:
            failure = DeviceDead(f"[{self._name}] the device process died (exit code {self._wait_exitcode()})", device_name=self._name)
        else:
            failure = kind(f"[{self._name}] {message}", device_name=self._name)
        self.fail_all(failure)

    def _drain(self) -> None:
        """Route the frames the child sent just before it exited."""
        try:
            while self._conn.poll(0):
                self._read_frame()
        except Exception:  # _Ended: nothing more to read
            pass

    def _wait_exitcode(self, timeout: float = 0.5) -> int | None:
        """The exit code of a child whose sentinel fired: reaping it may take a moment."""
        deadline = _monotonic() + timeout
        while True:
            code = self._exitcode()
            if code is not None or _monotonic() > deadline:
                return code
            time.sleep(0.002)


class _Ended(Exception):
    """The channel is over (raised inside the owner thread only): how, and why."""

    def __init__(self, kind: type[AlpacaDeviceIPCError], message: str | None) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message


def _poller(*fds: int) -> Any:
    p = select.poll()
    for fd in fds:
        p.register(fd, _IN)
    return p
