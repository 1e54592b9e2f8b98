"""The Falcon app: routes, Alpaca parameter rules, the envelope, ASCOM errors -> responses.

    request ─> DeviceResource ─> Params (casing rules) ─> Device.invoke (under the device lock)
                                                             │ value / AscomError
    response <─ envelope (JSON) or ImageBytes <──────────────┘

Anything that is not a valid Alpaca request (bad path, unknown device or member, wrong verb,
missing or unparseable parameter) is HTTP 400 with a plain-text body, never 404/405/500.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import falcon

from emulator import images
from emulator.devices import DEVICE_CLASSES
from emulator.devices.base import Device, Member
from emulator.errors import AscomError, BadRequest
from emulator.protocol import Params, envelope, parse_form
from emulator.registry import Registry

log = logging.getLogger(__name__)

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


class ServerTransactions:
    """ServerTransactionID: starts at 1 and increases, per emulator (never shared)."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def next(self) -> int:
        return next(self._counter)


def bad_request(resp: falcon.Response, message: str) -> None:
    resp.status = falcon.HTTP_400
    resp.content_type = TEXT
    resp.data = message.encode()


class DeviceResource:
    """``/api/v1/{device_type}/{device_number}/{member}``: every member of every device."""

    def __init__(self, registry: Registry, transactions: ServerTransactions) -> None:
        self.registry = registry
        self.transactions = transactions

    def on_get(self, req: falcon.Request, resp: falcon.Response, device_type: str, device_number: str, member: str) -> None:
        self._handle("GET", req, resp, device_type, device_number, member)

    def on_put(self, req: falcon.Request, resp: falcon.Response, device_type: str, device_number: str, member: str) -> None:
        self._handle("PUT", req, resp, device_type, device_number, member)

    def _other(self, req: falcon.Request, resp: falcon.Response, **_: Any) -> None:
        bad_request(resp, f"HTTP method {req.method} is not used by the Alpaca device API (use GET or PUT)")

    on_post = on_delete = on_patch = on_head = on_options = _other

    def resolve(self, verb: str, device_type: str, device_number: str, member: str) -> tuple[Device, Member]:
        if device_type not in DEVICE_CLASSES:
            raise BadRequest(f"'{device_type}' is not a valid ASCOM device type (lowercase, e.g. telescope)")
        if not device_number.isdigit() or not device_number.isascii():
            raise BadRequest(f"device number must be a non-negative integer, got '{device_number}'")
        device = self.registry.get(device_type, int(device_number))
        if device is None:
            raise BadRequest(f"{device_type} device {int(device_number)} does not exist")
        spec = device.members.get((verb, member))
        if spec is None:
            verbs = device.member_verbs.get(member)
            if verbs is None:
                raise BadRequest(f"'{member}' is not a valid {device_type} member (members are lowercase)")
            raise BadRequest(f"{device_type} member '{member}' does not accept {verb} (use {'/'.join(sorted(verbs))})")
        return device, spec

    def read_params(self, verb: str, req: falcon.Request) -> Params:
        if verb == "GET":
            return Params("GET", parse_form(req.query_string))
        length = req.content_length or 0
        body = req.bounded_stream.read(length) if length else b""
        return Params("PUT", parse_form(body))

    def _handle(self, verb: str, req: falcon.Request, resp: falcon.Response, device_type: str, device_number: str, member: str) -> None:
        try:
            params = self.read_params(verb, req)
            device, spec = self.resolve(verb, device_type, device_number, member)
            args = {name: params.typed(name, kind) for name, kind in spec.params}
        except BadRequest as exc:
            bad_request(resp, str(exc))
            return
        client_tx = params.client_transaction_id()
        server_tx = self.transactions.next()
        try:
            with device.lock:
                value = device.invoke(spec, args)
        except AscomError as exc:
            if spec.name == "imagearray" and images.wants_imagebytes(req.get_header("Accept")):
                resp.content_type = images.IMAGEBYTES
                resp.data = images.imagebytes_error(exc.number, exc.message, client_tx, server_tx)
                return
            resp.content_type = JSON
            resp.data = envelope(client_tx, server_tx, has_value=False, error_number=exc.number, error_message=exc.message)
            return
        if isinstance(value, images.ImageData):
            images.respond(req, resp, value, client_tx, server_tx)
            return
        resp.content_type = JSON
        resp.data = envelope(client_tx, server_tx, value, has_value=verb == "GET" or value is not None)


def build_app(registry: Registry, transactions: ServerTransactions | None = None) -> falcon.App:
    """The Falcon app of one emulator; every piece of state hangs off ``registry``."""
    from emulator.management import add_management_routes

    app = falcon.App(media_type=JSON)
    app.req_options.strip_url_path_trailing_slash = False
    transactions = transactions or ServerTransactions()
    app.add_route("/api/v1/{device_type}/{device_number}/{member}", DeviceResource(registry, transactions))
    add_management_routes(app, registry, transactions)

    def not_alpaca(req: falcon.Request, resp: falcon.Response, **_: Any) -> None:
        bad_request(resp, f"'{req.path}' is not a valid Alpaca path (expected /api/v1/<device_type>/<n>/<member>)")

    app.add_sink(not_alpaca, "/")

    def http_error(req: falcon.Request, resp: falcon.Response, ex: falcon.HTTPError, params: dict) -> None:
        # Falcon's own 404/405/... answers would break the Alpaca rule: always 400 plain text.
        bad_request(resp, f"{ex.title}: {ex.description or req.path}")

    def unexpected(req: falcon.Request, resp: falcon.Response, ex: Exception, params: dict) -> None:
        log.exception("unexpected error serving %s %s", req.method, req.path)
        resp.status = falcon.HTTP_500
        resp.content_type = TEXT
        resp.data = f"internal emulator error: {type(ex).__name__}".encode()

    app.add_error_handler(Exception, unexpected)
    app.add_error_handler(falcon.HTTPError, http_error)
    return app
