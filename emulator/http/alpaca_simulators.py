"""The control endpoints of the original controller's simulator, for the tests written against it.

    GET  /                                   200, JSON: the server's description and its devices
    GET  /reload                             every device and the observatory back to the configured state
    GET  /sunlight                           {"sunlight": true | false | null}  (null: follow the Sun)
    PUT  /sunlight?state=true|false          daylight on or off (``state`` in the query or the form body)
    PUT  /api/v1/safetymonitor/{n}/issafe    form field IsSafe=true|false: what IsSafe answers from now on

Served only when ``[emulator] alpaca_simulators_api`` is on (the ``alpaca-simulators`` profile), so
``/`` stays free for other uses otherwise. Answers outside ``/api`` are plain JSON objects, as that
simulator's are; the IsSafe PUT answers with the Alpaca envelope like any other PUT. A bad
``state`` or ``IsSafe`` is an HTTP 400 naming the parameter. ``/reload`` leaves fault rules alone
(the control API's reset removes those too).
"""

from __future__ import annotations

import json
from typing import Any

import falcon

from emulator.http.management import ServerDescription
from emulator.http.protocol import JSON, BadRequest, Params, ServerTransactions, convert, envelope, parse_form, request_params
from emulator.sim.registry import Registry
from emulator.version import __version__


def _json(resp: falcon.Response, body: dict[str, Any]) -> None:
    resp.content_type = JSON
    resp.data = json.dumps(body, separators=(",", ":")).encode()


class InfoResource:
    """``GET /``: who this server is and what it serves."""

    def __init__(self, registry: Registry, description: ServerDescription) -> None:
        self.registry = registry
        self.description = description

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        d = self.description
        _json(resp, {
            "ServerName": d.server_name,
            "Manufacturer": d.manufacturer,
            "ManufacturerVersion": __version__,
            "Location": d.location,
            "Devices": self.registry.configured_devices(),
        })


class ReloadResource:
    """``GET /reload``: the configured state back, through the registry's own reset."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.registry.reset()
        _json(resp, {"message": "State config reloaded"})


class SunlightResource:
    """``/sunlight``: the observatory's daylight override."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        _json(resp, {"sunlight": self.registry.observatory.sunlight})

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        raw = Params("GET", parse_form(req.query_string)).raw("state")  # the query: any case
        if raw is None:
            raw = request_params(req).raw("state")  # the form body
        if raw is None:
            raise BadRequest("Missing parameter 'state' (true or false, in the query or the form body)")
        state = convert("state", raw, bool)
        self.registry.observatory.sunlight = state
        _json(resp, {"message": f"Sunlight simulation {'enabled' if state else 'disabled'}"})


class WritableIsSafeResource:
    """``/api/v1/safetymonitor/{n}/issafe``: GET as for any device, PUT sets what it answers.

    ``alpaca`` is the app's device resource: it serves the GET, and finds the device for the PUT,
    so an unknown device number gets the same 400 as anywhere else in the device API.
    """

    def __init__(self, alpaca: Any, transactions: ServerTransactions, lenient_ids: bool) -> None:
        self.alpaca = alpaca
        self.transactions = transactions
        self.lenient_ids = lenient_ids

    def on_get(self, req: falcon.Request, resp: falcon.Response, device_number: str) -> None:
        self.alpaca.on_get(req, resp, "safetymonitor", device_number, "issafe")

    def on_put(self, req: falcon.Request, resp: falcon.Response, device_number: str) -> None:
        params = request_params(req)
        device, _ = self.alpaca.resolve("GET", "safetymonitor", device_number, "issafe")
        if not self.lenient_ids:
            params.check_ids()
        value = params.typed("IsSafe", bool)
        with device.lock:
            device.set_state({"IsSafe": value})
        resp.content_type = JSON
        resp.data = envelope(params.client_transaction_id(), self.transactions.next(), has_value=False)


def add_alpaca_simulators_routes(app: falcon.App, registry: Registry, description: ServerDescription,
                                 transactions: ServerTransactions, alpaca: Any, lenient_ids: bool = False) -> None:
    """Add the routes above; ``alpaca`` is the app's ``/api/v1`` device resource."""
    app.add_route("/", InfoResource(registry, description))
    app.add_route("/reload", ReloadResource(registry))
    app.add_route("/sunlight", SunlightResource(registry))
    app.add_route("/api/v1/safetymonitor/{device_number}/issafe", WritableIsSafeResource(alpaca, transactions, lenient_ids))
