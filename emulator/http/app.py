"""The Falcon app: routes, Alpaca parameter rules, the envelope, ASCOM errors -> responses.

    request ─> [middleware] ─> DeviceResource ─> Params (casing rules) ─> Device.invoke (under its lock)
                                                                            │ value / AscomError
    response <─ envelope (JSON) or ImageArray (ImageBytes / JSON) <─────────┘ error handlers

Exceptions become answers in error handlers, as Falcon intends: :class:`AscomError` (from a device
model, or raised for it by a fault rule) is a 200 with ErrorNumber/ErrorMessage, in ImageBytes
when an ImageArray request asked for that; :class:`BadRequest` and anything else that is not a
valid Alpaca request (bad path, unknown device or member, wrong verb, missing or unparseable
parameter) is HTTP 400 with a plain-text body, never 404/405/500. The app knows nothing of fault
rules: ``middleware`` is the one hook through which they act.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

import falcon

from emulator.http import imagearray
from emulator.http.alpaca_simulators import add_alpaca_simulators_routes
from emulator.http.management import ServerDescription, add_management_routes
from emulator.http.protocol import JSON, TEXT, BadRequest, Params, ServerTransactions, envelope, request_params
from emulator.http.setup import add_setup_routes
from emulator.http.simulator import add_simulator_routes
from emulator.sim import interfaces
from emulator.sim.devices import DEVICE_CLASSES
from emulator.sim.devices.base import Device, Member
from emulator.sim.errors import AscomError
from emulator.sim.images import ImageData
from emulator.sim.registry import Registry

log = logging.getLogger(__name__)


def bad_request(resp: falcon.Response, message: str) -> None:
    resp.status = falcon.HTTP_400
    resp.content_type = TEXT
    resp.data = message.encode()


class DeviceResource:
    """``/api/v1/{device_type}/{device_number}/{member}``: every member of every device."""

    def __init__(self, registry: Registry, transactions: ServerTransactions, lenient_ids: bool = False) -> None:
        self.registry = registry
        self.transactions = transactions
        self.lenient_ids = lenient_ids

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
        spec = device.routes.get((verb, member))
        if spec is None:
            verbs = device.route_verbs.get(member)
            if verbs is None:
                why = interfaces.absent_reason(device_type, member, device.interface_version)
                raise BadRequest(f"'{member}' is not a valid {device_type} member " + (f"({why})" if why else "(members are lowercase)"))
            raise BadRequest(f"{device_type} member '{member}' does not accept {verb} (use {'/'.join(sorted(verbs))})")
        return device, spec

    def _handle(self, verb: str, req: falcon.Request, resp: falcon.Response, device_type: str, device_number: str, member: str) -> None:
        params: Params = request_params(req)
        device, spec = self.resolve(verb, device_type, device_number, member)
        if not self.lenient_ids:
            params.check_ids()
        args = {name: params.typed(name, kind) for name, kind in spec.params}
        with device.lock:
            value = device.invoke(spec, args)
        client_tx, server_tx = params.client_transaction_id(), self.transactions.next()
        if isinstance(value, ImageData):
            imagearray.respond(req, resp, value, client_tx, server_tx)
            return
        resp.content_type = JSON
        resp.data = envelope(client_tx, server_tx, value, has_value=verb == "GET" or value is not None)


def _alpaca_member(req: falcon.Request) -> str | None:
    """The member of an ``/api/v1/{type}/{n}/{member}`` path, lowercased; None for any other path."""
    parts = req.path.split("/")
    return parts[5].lower() if len(parts) == 6 and parts[1] == "api" else None


def build_app(
    registry: Registry,
    description: ServerDescription,
    transactions: ServerTransactions | None = None,
    middleware: Iterable[Any] = (),
    lenient_ids: bool = False,
    alpaca_simulators_api: bool = False,
) -> falcon.App:
    """The Falcon app of one emulator; every piece of state hangs off ``registry``.

    ``middleware`` are Falcon middleware objects run around every request (the fault rules' hook).
    ``lenient_ids`` answers a malformed ClientID/ClientTransactionID as absent instead of 400.
    ``alpaca_simulators_api`` adds the original controller's simulator endpoints (``GET /`` among them).
    """
    app = falcon.App(media_type=JSON, middleware=list(middleware))
    app.req_options.strip_url_path_trailing_slash = False
    transactions = transactions or ServerTransactions()
    devices = DeviceResource(registry, transactions, lenient_ids)
    app.add_route("/api/v1/{device_type}/{device_number}/{member}", devices)
    add_management_routes(app, registry, description, transactions, lenient_ids)
    add_setup_routes(app, registry, description)
    add_simulator_routes(app, registry, transactions)
    if alpaca_simulators_api:
        add_alpaca_simulators_routes(app, registry, description, transactions, devices, lenient_ids)

    def not_alpaca(req: falcon.Request, resp: falcon.Response, **_: Any) -> None:
        bad_request(resp, f"'{req.path}' is not a valid Alpaca path (expected /api/v1/<device_type>/<n>/<member>)")

    app.add_sink(not_alpaca, "/")

    def ascom_error(req: falcon.Request, resp: falcon.Response, ex: AscomError, params: dict) -> None:
        # The parameters may not have been read yet (a fault rule raises before routing): read
        # them leniently, as a device that answers with an error still echoes what it could.
        client_tx = request_params(req, strict=False).client_transaction_id()
        server_tx = transactions.next()
        resp.status = falcon.HTTP_200
        if _alpaca_member(req) == "imagearray" and imagearray.wants_imagebytes(req.get_header("Accept")):
            resp.content_type = imagearray.IMAGEBYTES
            resp.data = imagearray.imagebytes_error(ex.number, ex.message, client_tx, server_tx)
            return
        resp.content_type = JSON
        resp.data = envelope(client_tx, server_tx, has_value=False, error_number=ex.number, error_message=ex.message)

    def bad(req: falcon.Request, resp: falcon.Response, ex: BadRequest, params: dict) -> None:
        bad_request(resp, str(ex))

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
    app.add_error_handler(BadRequest, bad)
    app.add_error_handler(AscomError, ascom_error)
    return app
