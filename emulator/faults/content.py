"""Fault actions at the HTTP level: answering for the device, or changing what its reply says.

Request-stage actions answer instead of the device (it never sees the call); response-content
actions take the app's reply, content type and body, and give back a broken one. The fault
middleware (:mod:`emulator.faults.middleware`) calls them; an ``ascom_error`` is raised as the
device would raise it, so the app answers it in the encoding the request asked for.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any, Callable, Literal

from pydantic import Field, field_validator

from emulator.faults.actions import FaultAction, register
from emulator.sim.errors import AscomError

# -- request: the device is not called --------------------------------------------------------------


def _status_line(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Fault Injected"


@register
class HttpStatus(FaultAction):
    kind: Literal["http_status"]
    status: int = Field(500, ge=200, le=599, description="HTTP status code")
    body: str = Field("", description="Plain-text body")
    stage = "request"

    def apply(self, req: Any, resp: Any) -> None:
        resp.status = _status_line(self.status)
        resp.content_type = "text/plain; charset=utf-8"
        resp.data = self.body.encode()
        resp.complete = True  # Falcon: skip routing and the responder


@register
class AscomErrorAction(FaultAction):
    kind: Literal["ascom_error"]
    number: int = Field(0x500, ge=1, le=0x7FFFFFFF, description="ErrorNumber (hex strings like '0x407' too)")
    message: str = Field("", description="ErrorMessage (default: a message naming the rule)")
    stage = "request"

    @field_validator("number", mode="before")
    @classmethod
    def _hex(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                return int(v, 0)
            except ValueError:
                raise ValueError(f"not an integer: {v!r}") from None
        return v

    def apply(self, req: Any, resp: Any) -> None:
        raise AscomError(self.message or f"fault injected: ErrorNumber 0x{self.number:X}", self.number)


# -- response content: the device acted, its reply is broken ----------------------------------------


def _reshape(content_type: str, body: bytes, change: Callable[[dict], None]) -> tuple[str, bytes]:
    """Apply ``change`` to a JSON envelope; anything else (400 text, ImageBytes, HTML) passes intact."""
    if "json" not in content_type.lower():
        return content_type, body
    try:
        doc = json.loads(body)
    except ValueError:
        return content_type, body
    if not isinstance(doc, dict):
        return content_type, body
    change(doc)
    return content_type, json.dumps(doc, separators=(",", ":")).encode()


@register
class BadJson(FaultAction):
    kind: Literal["bad_json"]
    stage = "response-content"

    def apply(self, content_type: str, body: bytes) -> tuple[str, bytes]:
        return content_type, b"<<not JSON>> " + body[: max(1, len(body) // 2)]


@register
class BadContentType(FaultAction):
    kind: Literal["bad_content_type"]
    content_type: str = Field("text/html; charset=utf-8", description="The wrong Content-Type")
    stage = "response-content"

    def apply(self, content_type: str, body: bytes) -> tuple[str, bytes]:
        return self.content_type, body


@register
class MissingKey(FaultAction):
    kind: Literal["missing_key"]
    key: Literal["Value", "ClientTransactionID", "ServerTransactionID", "ErrorNumber", "ErrorMessage"] = "Value"
    stage = "response-content"

    def apply(self, content_type: str, body: bytes) -> tuple[str, bytes]:
        return _reshape(content_type, body, lambda doc: doc.pop(self.key, None))


def _wrong_type(doc: dict) -> None:
    value = doc.get("Value")
    doc["Value"] = [value] if isinstance(value, str) else json.dumps(value) if "Value" in doc else "wrong type"


@register
class WrongType(FaultAction):
    kind: Literal["wrong_type"]
    stage = "response-content"

    def apply(self, content_type: str, body: bytes) -> tuple[str, bytes]:
        return _reshape(content_type, body, _wrong_type)


def _wrong_transaction_id(doc: dict) -> None:
    doc["ClientTransactionID"] = (int(doc.get("ClientTransactionID") or 0) + 1) % 4294967296
    doc["ServerTransactionID"] = 0


@register
class WrongTransactionId(FaultAction):
    kind: Literal["wrong_transaction_id"]
    stage = "response-content"

    def apply(self, content_type: str, body: bytes) -> tuple[str, bytes]:
        return _reshape(content_type, body, _wrong_transaction_id)
