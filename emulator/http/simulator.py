"""OmniSim's simulator-control endpoints, outside the Alpaca namespace, for suites written for OmniSim.

    GET /simulator/v1/{device_type}/{n}/xmlprofile   the device's settings (OmniSim's XML, in Value)
    PUT /simulator/v1/{device_type}/{n}/reset        the device back to its configured state
    PUT /simulator/v1/{device_type}/{n}/restart      the same: a fresh device, as after a restart

Answers use the Alpaca envelope, as OmniSim's do; an unknown device, path or verb is an HTTP 400
with a plain-text reason, as for the Alpaca API. OmniSim's ``reset`` goes back to its defaults
and ``restart`` to its stored settings; here the configuration is both (there is no endpoint that
changes settings), so the two do the same.
"""

from __future__ import annotations

import falcon

from emulator.http.protocol import JSON, BadRequest, ServerTransactions, envelope, request_params
from emulator.sim import xmlprofile
from emulator.sim.devices.base import Device
from emulator.sim.registry import Registry

PREFIX = "/simulator/v1"
_ACTIONS = {"GET": ("xmlprofile",), "PUT": ("reset", "restart")}


class SimulatorResource:
    """``/simulator/v1/{device_type}/{device_number}/{action}``."""

    def __init__(self, registry: Registry, transactions: ServerTransactions) -> None:
        self.registry = registry
        self.transactions = transactions

    def _device(self, device_type: str, device_number: str) -> Device:
        if not device_number.isdigit() or not device_number.isascii():
            raise BadRequest(f"device number must be a non-negative integer, got '{device_number}'")
        device = self.registry.get(device_type, int(device_number))
        if device is None:
            raise BadRequest(f"{device_type} device {int(device_number)} does not exist")
        return device

    def _check(self, verb: str, action: str) -> None:
        if action not in _ACTIONS[verb]:
            other = "PUT" if verb == "GET" else "GET"
            if action in _ACTIONS[other]:
                raise BadRequest(f"simulator action '{action}' takes {other}, not {verb}")
            valid = ", ".join(f"{v} {a}" for v, names in _ACTIONS.items() for a in names)
            raise BadRequest(f"'{action}' is not a simulator action (valid: {valid})")

    def _answer(self, req: falcon.Request, resp: falcon.Response, value: object, has_value: bool) -> None:
        resp.content_type = JSON
        resp.data = envelope(request_params(req).client_transaction_id(), self.transactions.next(), value, has_value=has_value)

    def on_get(self, req: falcon.Request, resp: falcon.Response, device_type: str, device_number: str, action: str) -> None:
        self._check("GET", action)
        device = self._device(device_type, device_number)
        with device.lock:
            text = xmlprofile.document(xmlprofile.settings(device, self.registry.unique_id(device)))
        self._answer(req, resp, text, True)

    def on_put(self, req: falcon.Request, resp: falcon.Response, device_type: str, device_number: str, action: str) -> None:
        self._check("PUT", action)
        device = self._device(device_type, device_number)
        self.registry.reset_device(device.device_type, device.number)
        self._answer(req, resp, None, False)


def add_simulator_routes(app: falcon.App, registry: Registry, transactions: ServerTransactions) -> None:
    app.add_route(f"{PREFIX}/{{device_type}}/{{device_number}}/{{action}}", SimulatorResource(registry, transactions))
