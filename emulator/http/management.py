"""The management API (reference section 4.2): API versions, server description, configured devices."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import falcon

from emulator.http.protocol import JSON, ServerTransactions, envelope, request_params
from emulator.sim.registry import Registry
from emulator.version import __version__


@dataclass(frozen=True)
class ServerDescription:
    """What ``/management/v1/description`` and the setup pages say about this server."""

    server_name: str
    manufacturer: str
    location: str


class _Management:
    def __init__(self, value: Any, transactions: ServerTransactions, lenient_ids: bool) -> None:
        self._value = value  # the Value, or a callable giving it at request time
        self.transactions = transactions
        self.lenient_ids = lenient_ids

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = request_params(req)
        if not self.lenient_ids:
            params.check_ids()
        value = self._value() if callable(self._value) else self._value
        resp.content_type = JSON
        resp.data = envelope(params.client_transaction_id(), self.transactions.next(), value, has_value=True)


def add_management_routes(
    app: falcon.App, registry: Registry, description: ServerDescription, transactions: ServerTransactions, lenient_ids: bool = False
) -> None:
    about = {
        "ServerName": description.server_name,
        "Manufacturer": description.manufacturer,
        "ManufacturerVersion": __version__,
        "Location": description.location,
    }
    app.add_route("/management/apiversions", _Management([1], transactions, lenient_ids))
    app.add_route("/management/v1/description", _Management(about, transactions, lenient_ids))
    app.add_route("/management/v1/configureddevices", _Management(registry.configured_devices, transactions, lenient_ids))
