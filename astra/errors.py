"""AlpacaDevice errors: one hierarchy, one class per cause, every error keeping its request.

::

    AlpacaDeviceError                       .request (op, member, args, kwargs), .method, .device_name
    ├── AlpacaDeviceIPCError                .reason: between the caller and its device process
    │   ├── DeviceTimeout       timeout     no reply within the call's deadline (it may still complete)
    │   ├── DeviceDead          dead        the device process died
    │   ├── DeviceStopped       stopped     stop() was called
    │   ├── ChannelClosed       closed      never started, or the pipe is closed
    │   └── BrokenChannel       broken      the pipe failed or carried something unreadable
    └── RemoteDeviceError                   .cause, .ambiguous: the device side of the device process
        ├── RemoteAscomError    ascom       the device answered with an ASCOM error (.error_number, .error_name)
        ├── RemoteHTTPStatus    http_status a non-2xx answer (.http_status)
        ├── RemoteRefused       refused     no connection: the request provably never reached the server
        ├── RemoteTimeout       timeout     no answer in time
        ├── RemoteDropped       dropped     the connection broke after the request was sent
        ├── RemoteMalformed     malformed   an answer that is not a valid Alpaca envelope
        └── RemoteOther         other       anything else (.remote_type names it)
            └── BadArguments    other       wrong arguments for the member: nothing was sent (a TypeError too)

The classes are the one list of reasons and causes: :data:`IPC_REASONS` and :data:`REMOTE_CAUSES`
are read off them. ``ambiguous`` is True when the request may have reached the device, i.e. it
may have acted although the call failed.

Classification happens in the device process, where the exception object lives; our errors hold
plain fields only (and the device process's traceback as text, rebuilt as ``__cause__`` on the
caller's side), so they pickle across the pipe even when the exception they explain cannot.
"""

from __future__ import annotations

import copy
import socket
import traceback
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from astra.protocol import Request


class AlpacaDeviceError(Exception):
    """Base error for AlpacaDevice failures (IPC or remote).

    ``request`` is the call that failed (``op``, ``member``, ``args``, ``kwargs``; None for a
    failure of no one call); ``method`` is its member, kept under the seed's name.
    """

    def __init__(self, message: str, *, request: Request | None = None, device_name: str | None = None,
                 method: str | None = None) -> None:
        super().__init__(message)
        self.request = request
        self.device_name = device_name
        self.method = method if method is not None or request is None else request.member

    def for_request(self, request: Request, note: str | None = None) -> "AlpacaDeviceError":
        """A copy of this error as the caller of ``request`` sees it (``note`` appended to the text)."""
        err = copy.copy(self)
        if note:
            err.args = (f"{self} ({note})",)
        err.request = request
        if err.method is None:
            err.method = request.member
        return err

    def __reduce__(self) -> tuple:
        return (_rebuild, (type(self), str(self), dict(self.__dict__)))

    @staticmethod
    def from_device(device: Any, exc: BaseException, method_name: str, method: str | None = None) -> "AlpacaDeviceError":
        """Wrap ``exc``, raised while ``device`` ran ``method_name`` (``method``: the member), in the right subclass.

        Errors of this family are returned as they are; pipe failures become
        :class:`BrokenChannel`; everything else is classified as a :class:`RemoteDeviceError`.
        The original exception is kept as ``__cause__``.
        """
        if isinstance(exc, AlpacaDeviceError):
            return exc
        name = _device_name(device)
        what = f"{method_name} {method}" if method else method_name
        if isinstance(exc, (EOFError, BrokenPipeError)) or (isinstance(exc, OSError) and _is_pipe_error(exc)):
            err: AlpacaDeviceError = BrokenChannel(
                f"[{name}] {what}: pipe to the device process failed: {type(exc).__name__}: {exc}",
                device_name=name, method=method,
            )
        else:
            err = RemoteDeviceError.from_fields(dict(classify(exc), method=method or method_name, device_name=name, attempts=1))
        err.__cause__ = exc
        return err


def _rebuild(cls: type, message: str, state: dict[str, Any]) -> AlpacaDeviceError:
    err = cls.__new__(cls, message)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    if state.get("remote_traceback"):
        err.__cause__ = RemoteTraceback(state["remote_traceback"])
    return err


# -- between the caller and its device process ---------------------------------------------------


class AlpacaDeviceIPCError(AlpacaDeviceError):
    """Error communicating with the device subprocess (IPC): ``reason`` (and the subclass) says how."""

    reason = "broken"

    def __init__(self, message: str, *, reason: str | None = None, request: Request | None = None,
                 device_name: str | None = None, method: str | None = None) -> None:
        super().__init__(message, request=request, device_name=device_name, method=method)
        if reason is not None and reason != type(self).reason:
            if type(self) is not AlpacaDeviceIPCError or reason not in _IPC_BY_REASON:
                raise ValueError(f"reason of {type(self).__name__} must be one of {list(IPC_REASONS)}, got {reason!r}")
            self.reason = reason

    @staticmethod
    def of(reason: str, message: str, **fields: Any) -> "AlpacaDeviceIPCError":
        """The error of ``reason`` as its own class."""
        try:
            cls = _IPC_BY_REASON[reason]
        except KeyError:
            raise ValueError(f"reason must be one of {list(IPC_REASONS)}, got {reason!r}") from None
        return cls(message, **fields)


class DeviceTimeout(AlpacaDeviceIPCError):
    """No reply from the device process within the call's deadline (the call may still complete there)."""

    reason = "timeout"


class DeviceDead(AlpacaDeviceIPCError):
    """The device process died; every pending and later call fails with this."""

    reason = "dead"


class DeviceStopped(AlpacaDeviceIPCError):
    """The device was stopped (``stop()``, or the device process is stopping)."""

    reason = "stopped"


class ChannelClosed(AlpacaDeviceIPCError):
    """The device was never started, or the pipe to it is closed."""

    reason = "closed"


class BrokenChannel(AlpacaDeviceIPCError):
    """The pipe failed, or carried something that cannot be read."""

    reason = "broken"


_IPC_BY_REASON: dict[str, type[AlpacaDeviceIPCError]] = {
    cls.reason: cls for cls in (DeviceDead, DeviceTimeout, ChannelClosed, DeviceStopped, BrokenChannel)
}
#: Every AlpacaDeviceIPCError.reason.
IPC_REASONS: tuple[str, ...] = tuple(_IPC_BY_REASON)


# -- the device side of the device process --------------------------------------------------------

#: The fields of a RemoteDeviceError, as :meth:`RemoteDeviceError.fields` gives them.
REMOTE_FIELDS = (
    "cause",
    "error_number",
    "error_name",
    "http_status",
    "ambiguous",
    "method",
    "device_name",
    "remote_type",
    "remote_message",
    "attempts",
)


class RemoteDeviceError(AlpacaDeviceError):
    """Remote/network error when the device subprocess fails to contact ALPACA HTTP server (see ``cause``)."""

    cause = "other"
    #: how the message names this cause
    headline = "error"

    def __init__(
        self,
        message: str,
        *,
        cause: str | None = None,
        error_number: int | None = None,
        error_name: str | None = None,
        http_status: int | None = None,
        ambiguous: bool = False,
        method: str | None = None,
        device_name: str | None = None,
        remote_type: str | None = None,
        remote_message: str | None = None,
        attempts: int = 1,
        request: Request | None = None,
    ) -> None:
        super().__init__(message, request=request, device_name=device_name, method=method)
        if cause is not None and cause != type(self).cause:
            if type(self) is not RemoteDeviceError or cause not in _REMOTE_BY_CAUSE:
                raise ValueError(f"cause of {type(self).__name__} must be one of {list(REMOTE_CAUSES)}, got {cause!r}")
            self.cause = cause
        self.error_number = error_number
        self.error_name = error_name
        self.http_status = http_status
        self.ambiguous = ambiguous
        self.remote_type = remote_type
        self.remote_message = remote_message
        self.attempts = attempts
        #: the device process's traceback, as text (rebuilt as ``__cause__`` after the pipe)
        self.remote_traceback: str | None = None

    @classmethod
    def from_fields(cls, info: dict[str, Any]) -> "RemoteDeviceError":
        """The error of ``info["cause"]`` as its own class, from plain fields (see :data:`REMOTE_FIELDS`)."""
        kwargs = {k: info.get(k) for k in REMOTE_FIELDS}
        kind = _REMOTE_BY_CAUSE.get(kwargs.pop("cause") or "other")
        if kind is None:
            raise ValueError(f"cause must be one of {list(REMOTE_CAUSES)}, got {info.get('cause')!r}")
        kwargs["ambiguous"] = bool(kwargs["ambiguous"])
        kwargs["attempts"] = int(kwargs["attempts"] or 1)
        return kind(kind.compose(kwargs), request=info.get("request"), **kwargs)

    @classmethod
    def compose(cls, info: dict[str, Any]) -> str:
        """The message: where, what kind of failure, the device's own text, ambiguity and attempts."""
        where = f"[{info.get('device_name') or '?'}] {info.get('method') or '?'}"
        tail = ""
        if info.get("ambiguous"):
            tail += "; ambiguous: the device may have acted"
        attempts = info.get("attempts") or 1
        if attempts > 1:
            tail += f"; after {attempts} attempts"
        return f"{where}: {cls.head(info)}: {info.get('remote_message') or ''}{tail}"

    @classmethod
    def head(cls, info: dict[str, Any]) -> str:
        return cls.headline

    def fields(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in REMOTE_FIELDS}


class RemoteAscomError(RemoteDeviceError):
    """The device answered with an ASCOM error (``error_number``, ``error_name``); never retried."""

    cause = "ascom"

    @classmethod
    def head(cls, info: dict[str, Any]) -> str:
        number = info.get("error_number")
        return f"{info.get('error_name') or 'ASCOM error'}" + (f" (0x{number:X})" if isinstance(number, int) else "")


class RemoteHTTPStatus(RemoteDeviceError):
    """The server answered with a non-2xx status (``http_status``)."""

    cause = "http_status"

    @classmethod
    def head(cls, info: dict[str, Any]) -> str:
        return f"HTTP status {info.get('http_status')}"


class RemoteRefused(RemoteDeviceError):
    """No connection could be made: the request provably never reached the server."""

    cause = "refused"
    headline = "connection refused (request never reached the server)"


class RemoteTimeout(RemoteDeviceError):
    """The server gave no answer in time."""

    cause = "timeout"
    headline = "no answer in time"


class RemoteDropped(RemoteDeviceError):
    """The connection broke after the request was sent."""

    cause = "dropped"
    headline = "connection dropped"


class RemoteMalformed(RemoteDeviceError):
    """The answer is not a valid Alpaca envelope (bad JSON, missing keys, truncated body)."""

    cause = "malformed"
    headline = "malformed answer"


class RemoteOther(RemoteDeviceError):
    """Any other failure on the device side; ``remote_type`` names the exception."""

    cause = "other"

    @classmethod
    def head(cls, info: dict[str, Any]) -> str:
        return info.get("remote_type") or "error"


class BadArguments(RemoteOther, TypeError):
    """The member cannot take these arguments (or any: a property); found before anything was sent.

    A mistake in the caller's code, not a device failure: never ambiguous, never retried, and
    no request reaches the server. Also a :class:`TypeError`, as calling the member directly
    would raise.
    """


_REMOTE_BY_CAUSE: dict[str, type[RemoteDeviceError]] = {
    cls.cause: cls
    for cls in (RemoteAscomError, RemoteHTTPStatus, RemoteRefused, RemoteTimeout, RemoteDropped, RemoteMalformed, RemoteOther)
}
#: Every RemoteDeviceError.cause.
REMOTE_CAUSES: tuple[str, ...] = tuple(_REMOTE_BY_CAUSE)


class RemoteTraceback(Exception):
    """The device process's traceback, as text, attached as ``__cause__`` of the error it explains."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


def _device_name(device: Any) -> str:
    for attr in ("device_name", "name"):
        value = getattr(device, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(device).__name__


def _is_pipe_error(exc: OSError) -> bool:
    import errno

    return exc.errno in (errno.EPIPE, errno.EBADF, errno.ECONNRESET) and not _looks_like_http(exc)


def _looks_like_http(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] in ("requests", "urllib3", "http")


# -- classifying what alpyca raised ----------------------------------------------------------------


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, its causes/contexts, and the exceptions requests/urllib3 keep in args/reason."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo and len(seen) < 20:
        cur = todo.pop(0)
        if cur is None or any(cur is s for s in seen):
            continue
        seen.append(cur)
        for nxt in (getattr(cur, "reason", None), cur.__cause__, cur.__context__, *getattr(cur, "args", ())):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    return seen


def classify(exc: BaseException) -> dict[str, Any]:
    """Plain fields describing ``exc``: cause, ASCOM number/name, HTTP status, ambiguity, type and message."""
    info: dict[str, Any] = {
        "cause": "other",
        "error_number": None,
        "error_name": None,
        "http_status": None,
        "ambiguous": True,
        "remote_type": type(exc).__name__,
        "remote_message": str(exc),
    }
    module = type(exc).__module__
    try:
        import requests
    except ImportError:  # pragma: no cover - alpyca depends on requests
        requests = None  # type: ignore[assignment]

    if module.startswith("alpaca."):
        number = getattr(exc, "number", None)
        message = getattr(exc, "message", None)
        if message is not None:
            info["remote_message"] = str(message)
        if type(exc).__name__ == "AlpacaRequestException":
            info.update(cause="http_status", http_status=number, ambiguous=isinstance(number, int) and number >= 500)
        else:
            info.update(cause="ascom", error_number=number, error_name=type(exc).__name__, ambiguous=False)
        return info
    if requests is not None and isinstance(exc, requests.exceptions.RequestException):
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            info.update(cause="refused", ambiguous=False)
        elif isinstance(exc, requests.exceptions.Timeout):
            info.update(cause="timeout", ambiguous=True)
        elif isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
            info.update(cause="malformed", ambiguous=True)
        elif isinstance(exc, requests.exceptions.InvalidJSONError):
            info.update(cause="malformed", ambiguous=True)
        elif isinstance(exc, requests.exceptions.ConnectionError):
            if _never_connected(exc):
                info.update(cause="refused", ambiguous=False)
            elif any(isinstance(e, (TimeoutError, socket.timeout)) or "timed out" in str(e).lower() for e in _chain(exc)):
                info.update(cause="timeout", ambiguous=True)
            else:
                info.update(cause="dropped", ambiguous=True)
        elif isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema)):
            info.update(cause="refused", ambiguous=False)
        return info
    if isinstance(exc, ConnectionRefusedError):
        info.update(cause="refused", ambiguous=False)
    elif isinstance(exc, (TimeoutError, socket.timeout)):
        info.update(cause="timeout", ambiguous=True)
    elif isinstance(exc, ConnectionError):
        info.update(cause="dropped", ambiguous=True)
    elif isinstance(exc, (KeyError, ValueError)) and _from_response_parsing(exc):
        info.update(cause="malformed", ambiguous=True)
    return info


def _never_connected(exc: BaseException) -> bool:
    """True when the TCP connection was never established, so the request never left this host."""
    for e in _chain(exc):
        name = type(e).__name__
        if name in ("NewConnectionError", "NameResolutionError", "ConnectTimeoutError"):
            return True
        if isinstance(e, (ConnectionRefusedError, socket.gaierror)):
            return True
    return False


def _from_response_parsing(exc: BaseException) -> bool:
    """A KeyError/ValueError raised inside alpyca while reading the response (missing keys, bad JSON)."""
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename.replace("\\", "/")
        if "/alpaca/" in filename or "/json/" in filename or "/requests/" in filename:
            return True
        tb = tb.tb_next
    return False


def format_traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
