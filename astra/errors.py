"""AlpacaDevice errors, and how an exception raised by alpyca is classified.

Two families, so a caller can tell "the device said no / the network failed" from "our own
process plumbing failed":

* :class:`RemoteDeviceError`: anything on the device side of the device process. ``cause`` is
  one of ``ascom`` (the device answered with an ASCOM error: ``error_number``/``error_name``),
  ``http_status`` (a non-2xx answer: ``http_status``), ``refused`` (no connection could be
  made: the request provably never reached the server), ``timeout`` (no answer in time),
  ``dropped`` (the connection broke after the request was sent), ``malformed`` (an answer that
  is not a valid Alpaca envelope) or ``other``. ``ambiguous`` is True when the request may have
  reached the device, i.e. it may have acted although the call failed.
* :class:`AlpacaDeviceIPCError`: failures between the caller and the device process, with
  ``reason`` one of ``dead``, ``timeout``, ``closed``, ``stopped``, ``broken``.

Classification happens in the device process, where the exception object lives; only plain
fields (and the type name, message and traceback text) cross the pipe, so an exception class
that cannot be pickled still arrives intact as text.
"""

from __future__ import annotations

import socket
import traceback
from typing import Any

IPC_REASONS = frozenset({"dead", "timeout", "closed", "stopped", "broken"})
REMOTE_CAUSES = frozenset({"ascom", "http_status", "refused", "timeout", "dropped", "malformed", "other"})

#: The fields of a RemoteDeviceError that travel over the pipe as a plain dict.
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


class AlpacaDeviceError(Exception):
    """Base error for AlpacaDevice failures (IPC or remote)."""

    @staticmethod
    def from_device(device: Any, exc: BaseException, method_name: str, method: str | None = None) -> "AlpacaDeviceError":
        """Wrap ``exc``, raised while ``device`` ran ``method_name`` (``method``: the member), in the right subclass.

        Errors of this family are returned as they are; pipe and process failures become
        :class:`AlpacaDeviceIPCError`; everything else is classified as a
        :class:`RemoteDeviceError`. The original exception is kept as ``__cause__``.
        """
        if isinstance(exc, AlpacaDeviceError):
            return exc
        name = _device_name(device)
        what = f"{method_name} {method}" if method else method_name
        if isinstance(exc, (EOFError, BrokenPipeError)) or (isinstance(exc, OSError) and _is_pipe_error(exc)):
            err: AlpacaDeviceError = AlpacaDeviceIPCError(
                f"[{name}] {what}: pipe to the device process failed: {type(exc).__name__}: {exc}",
                reason="broken",
                device_name=name,
                method=method,
            )
        else:
            info = classify(exc)
            err = RemoteDeviceError.from_fields(dict(info, method=method or method_name, device_name=name, attempts=1))
        err.__cause__ = exc
        return err


class AlpacaDeviceIPCError(AlpacaDeviceError):
    """Error communicating with the device subprocess (IPC): ``reason`` says which way it failed."""

    def __init__(self, message: str, *, reason: str = "broken", device_name: str | None = None, method: str | None = None) -> None:
        if reason not in IPC_REASONS:
            raise ValueError(f"reason must be one of {sorted(IPC_REASONS)}, got {reason!r}")
        super().__init__(message)
        self.reason = reason
        self.device_name = device_name
        self.method = method

    def __reduce__(self) -> tuple:
        return (_rebuild_ipc, (str(self), self.reason, self.device_name, self.method))


class RemoteDeviceError(AlpacaDeviceError):
    """The device side failed: an ASCOM error, an HTTP status, or a network failure (see ``cause``)."""

    def __init__(
        self,
        message: str,
        *,
        cause: str = "other",
        error_number: int | None = None,
        error_name: str | None = None,
        http_status: int | None = None,
        ambiguous: bool = False,
        method: str | None = None,
        device_name: str | None = None,
        remote_type: str | None = None,
        remote_message: str | None = None,
        attempts: int = 1,
    ) -> None:
        if cause not in REMOTE_CAUSES:
            raise ValueError(f"cause must be one of {sorted(REMOTE_CAUSES)}, got {cause!r}")
        super().__init__(message)
        self.cause = cause
        self.error_number = error_number
        self.error_name = error_name
        self.http_status = http_status
        self.ambiguous = ambiguous
        self.method = method
        self.device_name = device_name
        self.remote_type = remote_type
        self.remote_message = remote_message
        self.attempts = attempts

    @classmethod
    def from_fields(cls, info: dict[str, Any]) -> "RemoteDeviceError":
        """Build from the plain dict that crosses the pipe (see :data:`REMOTE_FIELDS`)."""
        kwargs = {k: info.get(k) for k in REMOTE_FIELDS}
        kwargs["cause"] = kwargs["cause"] or "other"
        kwargs["ambiguous"] = bool(kwargs["ambiguous"])
        kwargs["attempts"] = int(kwargs["attempts"] or 1)
        return cls(_remote_message(kwargs), **kwargs)

    def fields(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in REMOTE_FIELDS}

    def __reduce__(self) -> tuple:
        return (_rebuild_remote, (str(self), self.fields()))


class RemoteTraceback(Exception):
    """The device process's traceback, as text, attached as ``__cause__`` of the error it explains."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


def _rebuild_ipc(message: str, reason: str, device_name: str | None, method: str | None) -> AlpacaDeviceIPCError:
    return AlpacaDeviceIPCError(message, reason=reason, device_name=device_name, method=method)


def _rebuild_remote(message: str, info: dict[str, Any]) -> RemoteDeviceError:
    return RemoteDeviceError(message, **info)


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


def _remote_message(info: dict[str, Any]) -> str:
    where = f"[{info.get('device_name') or '?'}] {info.get('method') or '?'}"
    cause = info["cause"]
    text = info.get("remote_message") or ""
    if cause == "ascom":
        number = info.get("error_number")
        head = f"{info.get('error_name') or 'ASCOM error'}" + (f" (0x{number:X})" if isinstance(number, int) else "")
    elif cause == "http_status":
        head = f"HTTP status {info.get('http_status')}"
    else:
        head = {
            "refused": "connection refused (request never reached the server)",
            "timeout": "no answer in time",
            "dropped": "connection dropped",
            "malformed": "malformed answer",
            "other": info.get("remote_type") or "error",
        }[cause]
    tail = ""
    if info.get("ambiguous"):
        tail += "; ambiguous: the device may have acted"
    attempts = info.get("attempts") or 1
    if attempts > 1:
        tail += f"; after {attempts} attempts"
    return f"{where}: {head}: {text}{tail}"


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
