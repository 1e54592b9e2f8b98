"""The HTML setup pages (reference section 4.1): every device with its state, and one device's page."""

from __future__ import annotations

import html

import falcon

from emulator.http.management import ServerDescription
from emulator.sim.devices import DEVICE_CLASSES
from emulator.sim.registry import Registry

HTML = "text/html; charset=utf-8"

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #999;padding:.3em .6em;text-align:left}}</style></head>
<body><h1>{title}</h1>{body}</body></html>"""


def _state_table(state: dict) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in state.items())
    return f"<table>{rows}</table>"


class SetupPage:
    """``/setup``: the devices this emulator serves, with their state."""

    def __init__(self, registry: Registry, title: str) -> None:
        self.registry = registry
        self.title = title

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        rows = []
        for d in sorted(self.registry, key=lambda d: (d.device_type, d.number)):
            with d.lock:
                state = d.get_state()
            link = f"/setup/v1/{d.device_type}/{d.number}/setup"
            rows.append(
                f"<tr><td><a href='{link}'>{html.escape(d.device_type)} {d.number}</a></td>"
                f"<td>{html.escape(d.name)}</td><td>{_state_table(state)}</td></tr>"
            )
        body = "<table><tr><th>device</th><th>name</th><th>state</th></tr>" + "".join(rows) + "</table>"
        resp.content_type = HTML
        resp.text = _PAGE.format(title=html.escape(self.title), body=body)


class DeviceSetupPage:
    """``/setup/v1/{type}/{n}/setup``: one device's configuration and state."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def on_get(self, req: falcon.Request, resp: falcon.Response, device_type: str, device_number: str) -> None:
        device = None
        if device_type in DEVICE_CLASSES and device_number.isdigit():
            device = self.registry.get(device_type, int(device_number))
        if device is None:
            # The management API answers an unsupported device's setup URL with 403 and an HTML message.
            resp.status = falcon.HTTP_403
            resp.content_type = HTML
            title = "No such device"
            message = f"<p>This emulator has no {html.escape(device_type)} device {html.escape(device_number)}.</p><p><a href='/setup'>All devices</a></p>"
            resp.text = _PAGE.format(title=title, body=message)
            return
        with device.lock:
            state = device.get_state()
        body = (
            f"<h2>{html.escape(device.name)}</h2><h3>State</h3>{_state_table(state)}"
            f"<h3>Configuration</h3>{_state_table(device.config.model_dump())}"
            "<p>Configure devices with a TOML file: <code>alpaca-emulator --config FILE</code>.</p>"
        )
        resp.content_type = HTML
        resp.text = _PAGE.format(title=f"Setup: {html.escape(device_type)} {device.number}", body=body)


def add_setup_routes(app: falcon.App, registry: Registry, description: ServerDescription) -> None:
    app.add_route("/setup", SetupPage(registry, description.server_name))
    app.add_route("/setup/v1/{device_type}/{device_number}/setup", DeviceSetupPage(registry))
