"""Alpaca parameter rules and the response envelope (reference section 2), free of Falcon.

- GET query keys are case-insensitive; PUT form keys are case-sensitive.
- ClientTransactionID is echoed; 0 when absent, unparseable, out of uint32 range, or mis-cased
  in a PUT.
- A missing or unparseable required parameter is a :class:`BadRequest` (HTTP 400, plain text).
- Numbers use the invariant culture: ``23.456`` is valid, ``23,456`` is not.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

from emulator.errors import BadRequest

_INT = re.compile(r"[+-]?\d+\Z")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")
UINT32_MAX = 4294967295


def parse_form(raw: str | bytes) -> list[tuple[str, str]]:
    """Parse ``a=1&b=2`` (query string or form body) keeping blank values, in order."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRequest(f"request body is not valid UTF-8 form data: {exc}") from None
    if "%" not in raw and "+" not in raw:
        # Nothing to unquote (what clients send for plain numbers and names): the same pairs
        # parse_qsl would give, without its per-field unquoting, on every request.
        return [(k, v) for k, _, v in (field.partition("=") for field in raw.split("&") if field)]
    try:
        return parse_qsl(raw, keep_blank_values=True, strict_parsing=False, errors="strict")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"could not parse parameters: {exc}") from None


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

    def as_dict(self) -> dict[str, str]:
        return dict(self._values)

    def client_transaction_id(self) -> int:
        return parse_uint32(self.raw("ClientTransactionID"))

    def client_id(self) -> int:
        return parse_uint32(self.raw("ClientID"))

    def typed(self, name: str, kind: type) -> Any:
        """The parameter ``name`` converted to ``kind``; BadRequest naming it when missing or bad."""
        raw = self.raw(name)
        if raw is None:
            hint = "" if self.verb == "GET" else " (PUT form keys are case-sensitive)"
            raise BadRequest(f"Missing parameter '{name}'{hint}")
        return convert(name, raw, kind)


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
