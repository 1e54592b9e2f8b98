"""Fault actions at the HTTP level: answering for the device, or changing what its reply says.

Request-stage actions answer instead of the device (it never sees the call); response-content
actions take the app's reply, content type and body, and give back a broken one. The fault
middleware (:mod:`emulator.faults.middleware`) calls them; an ``ascom_error`` is raised as the
device would raise it, so the app answers it in the encoding the request asked for.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any, Literal

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


class _EnvelopeChange(FaultAction):
    """Change a JSON envelope's content; anything else (400 text, ImageBytes, HTML) passes intact."""

    stage = "response-content"

    def change(self, doc: dict) -> None:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def apply(self, content_type: str, body: bytes) -> tuple[str, bytes]:
        if "json" not in content_type.lower():
            return content_type, body
        try:
            doc = json.loads(body)
        except ValueError:
            return content_type, body
        if not isinstance(doc, dict):
            return content_type, body
        self.change(doc)
        return content_type, json.dumps(doc, separators=(",", ":")).encode()


@register
class MissingKey(_EnvelopeChange):
    kind: Literal["missing_key"]
    key: Literal["Value", "ClientTransactionID", "ServerTransactionID", "ErrorNumber", "ErrorMessage"] = "Value"

    def change(self, doc: dict) -> None:
        doc.pop(self.key, None)


@register
class WrongType(_EnvelopeChange):
    kind: Literal["wrong_type"]

    def change(self, doc: dict) -> None:
        value = doc.get("Value")
        doc["Value"] = [value] if isinstance(value, str) else json.dumps(value) if "Value" in doc else "wrong type"


@register
class WrongTransactionId(_EnvelopeChange):
    kind: Literal["wrong_transaction_id"]

    def change(self, doc: dict) -> None:
        doc["ClientTransactionID"] = (int(doc.get("ClientTransactionID") or 0) + 1) % 4294967296
        doc["ServerTransactionID"] = 0
