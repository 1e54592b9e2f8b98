"""Alpaca parameter rules, the response envelope and transaction ids (reference section 2), free of Falcon.

- GET query keys are case-insensitive; PUT form keys are case-sensitive.
- ClientTransactionID is echoed; 0 when absent or mis-cased in a PUT.
- A ClientID or ClientTransactionID that is present but not a uint32 (empty, blank, negative,
  non-numeric, fractional, too big) is a :class:`BadRequest`, as the status decision tree says of
  invalid parameters and ConformU's strict mode expects; :meth:`Params.check_ids` is that rule,
  and a lenient server skips it (the value is then ignored and 0 echoed).
- A missing or unparseable required parameter is a :class:`BadRequest` (HTTP 400, plain text).
- Numbers use the invariant culture: ``23.456`` is valid, ``23,456`` is not.
"""

from __future__ import annotations

import itertools
import json
import re
import struct
from typing import Any
from urllib.parse import parse_qsl

_INT = re.compile(r"[+-]?\d+\Z")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")
_ERRNUM = re.compile(rb'"ErrorNumber"\s*:\s*(-?\d+)')
UINT32_MAX = 4294967295
JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


class BadRequest(Exception):
    """The request could not be understood: HTTP 400, plain text (reference section 2.5)."""


class ServerTransactions:
    """ServerTransactionID: starts at 1 and increases, per emulator (never shared)."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def next(self) -> int:
        return next(self._counter)


def parse_form(raw: str | bytes, strict: bool = True) -> list[tuple[str, str]]:
    """Parse ``a=1&b=2`` (query string or form body) keeping blank values, in order.

    ``strict`` (the app) raises BadRequest for input that is not UTF-8 form data; otherwise (the
    traffic log, which shows whatever came) undecodable bytes are replaced and unparseable input
    is no parameters.
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            if strict:
                raise BadRequest(f"request body is not valid UTF-8 form data: {exc}") from None
            raw = raw.decode("utf-8", "replace")
    if "%" not in raw and "+" not in raw:
        # Nothing to unquote (what clients send for plain numbers and names): the same pairs
        # parse_qsl would give, without its per-field unquoting, on every request.
        return [(k, v) for k, _, v in (field.partition("=") for field in raw.split("&") if field)]
    try:
        return parse_qsl(raw, keep_blank_values=True, strict_parsing=False, errors="strict" if strict else "replace")
    except (ValueError, UnicodeDecodeError) as exc:
        if strict:
            raise BadRequest(f"could not parse parameters: {exc}") from None
        return []


class Params:
    """Request parameters with the Alpaca casing rule of their verb."""

    __slots__ = ("verb", "_values")

    def __init__(self, verb: str, pairs: list[tuple[str, str]]) -> None:
        self.verb = verb
        values: dict[str, str] = {}
        for key, value in pairs:
            k = key if verb == "PUT" else key.lower()
            values.setdefault(k, value)  # first occurrence wins
        self._values = values

    def raw(self, name: str) -> str | None:
        return self._values.get(name if self.verb == "PUT" else name.lower())

    def client_transaction_id(self) -> int:
        return parse_uint32(self.raw("ClientTransactionID"))

    def check_ids(self) -> None:
        """BadRequest naming the first ID parameter that is present but not a uint32."""
        for name in ID_PARAMS:
            raw = self.raw(name)
            if raw is not None and not is_uint32(raw):
                raise BadRequest(f"{name} must be an unsigned 32-bit integer (0 to {UINT32_MAX}), got '{raw}'")

    def typed(self, name: str, kind: type) -> Any:
        """The parameter ``name`` converted to ``kind``; BadRequest naming it when missing or bad."""
        raw = self.raw(name)
        if raw is None:
            hint = "" if self.verb == "GET" else " (PUT form keys are case-sensitive)"
            raise BadRequest(f"Missing parameter '{name}'{hint}")
        return convert(name, raw, kind)


def request_params(req: Any, strict: bool = True) -> Params:
    """The Alpaca parameters of a Falcon request (the query of a GET, the form body of a PUT),
    read once and kept on ``req.context``; ``strict`` as for :func:`parse_form`."""
    ctx = req.context
    params = ctx.get("alpaca_params")
    if params is not None:
        return params
    verb = "PUT" if req.method == "PUT" else "GET"
    raw = ctx.get("alpaca_raw")
    if raw is None:
        if verb == "GET":
            raw = req.query_string
        else:
            length = req.content_length or 0
            raw = req.bounded_stream.read(length) if length else b""
        ctx.alpaca_raw = raw
    params = ctx.alpaca_params = Params(verb, parse_form(raw, strict))
    return params


ID_PARAMS = ("ClientID", "ClientTransactionID")


def is_uint32(raw: str) -> bool:
    """Plain ASCII digits within the uint32 range: the only form a strict server accepts."""
    return raw.isdigit() and raw.isascii() and int(raw) <= UINT32_MAX


def parse_uint32(raw: str | None) -> int:
    if raw is None:
        return 0
    if raw.isdigit() and raw.isascii():  # the usual case, without the regex
        value = int(raw)
        return value if value <= UINT32_MAX else 0
    if not _INT.match(raw.strip()):
        return 0
    value = int(raw)
    return value if 0 <= value <= UINT32_MAX else 0


def convert(name: str, raw: str, kind: type) -> Any:
    text = raw.strip()
    if kind is str:
        return raw
    if kind is bool:
        low = text.lower()
        if low == "true":
            return True
        if low == "false":
            return False
        raise BadRequest(f"Parameter '{name}' must be true or false, got '{raw}'")
    if kind is int:
        if not _INT.match(text):
            raise BadRequest(f"Parameter '{name}' must be an integer, got '{raw}'")
        return int(text)
    if kind is float:
        if not _FLOAT.match(text):
            raise BadRequest(f"Parameter '{name}' must be a number (invariant culture, e.g. 23.456), got '{raw}'")
        return float(text)
    raise TypeError(f"unsupported parameter type {kind!r}")  # a programming error, not a request error


def envelope(
    client_tx: int, server_tx: int, value: Any = None, *, has_value: bool, error_number: int = 0, error_message: str = ""
) -> bytes:
    """The JSON body of every 200: exactly the five keys (Value only when there is one)."""
    body: dict[str, Any] = {}
    if has_value:
        body["Value"] = value
    body["ClientTransactionID"] = client_tx
    body["ServerTransactionID"] = server_tx
    body["ErrorNumber"] = error_number
    body["ErrorMessage"] = error_message
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def error_number_of(body: bytes | None, content_type: str = "") -> int | None:
    """ErrorNumber of an Alpaca answer (JSON envelope or ImageBytes), without a full parse;
    None when it has none (plain text, HTML, a broken body)."""
    if not body:
        return None
    if body[:1] == b"{":
        # The envelope ends with ErrorNumber/ErrorMessage, so look from the end (ImageArray is big).
        at = body.rfind(b'"ErrorNumber"')
        m = _ERRNUM.match(body, at) if at >= 0 else None
        return int(m.group(1)) if m else None
    if len(body) >= 8 and "imagebytes" in content_type.lower():
        return struct.unpack_from("<i", body, 4)[0]
    return None
