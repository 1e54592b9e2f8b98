"""The web panel: the operator's page at ``/`` and at each device's Alpaca setup URL.

    GET /                                   every device, the fault rules, the traffic log, live
    GET /emulator/panel                     the same page, never faulted (for when a rule breaks /)
    GET /setup/v1/{type}/{n}/setup          the same page, about one device
    GET /emulator/panel/static/{file}       its script and style sheet (emulator/static/)

on the devices' port, and ``/`` and ``/emulator/panel`` on the control port (``control_port``),
where no fault layer serves and so no rule can reach the page.

The page is server-rendered HTML that names every device and rule as they are at load, then
``static/panel.js`` keeps it live by polling the control API (``/emulator/v1``) once a second:
polling, not server-sent events, because an open event stream would hold one of the server's
few worker threads per browser tab. Every change the page makes (a rule added, removed,
switched off; a state set) is a control API call, so the page can do nothing the API cannot, and
rules are validated by the same model, the API's field errors shown beside the form's fields.

What it shows comes through a small interface, :class:`PanelSource`: the rules (``faults``) and
the devices as the control API's ``GET /devices`` lists them (``device_views``), so the same page
serves the emulator and ``alpaca-proxy``, whose devices are its upstream's (state read from the
upstream, nothing settable, no camera preview: ``previews`` off and a ``note`` saying so).

Access is the control API's (:func:`emulator.control.access_error`): loopback clients only
without a control token; with one, ``/?token=TOKEN`` (or the page's form) stores it in an
HttpOnly, SameSite=Strict cookie that the control API accepts, and the address bar drops it.
A device's setup URL answers a client without access with the plain setup page, as before, so
Alpaca clients that check it still get their 200.
"""

from __future__ import annotations

import functools
import html
import json
from importlib import resources
from typing import Any, Protocol
from urllib.parse import quote

import falcon

from emulator.control import PREFIX, TOKEN_COOKIE, access_error, token_matches
from emulator.faults.actions import REGISTRY
from emulator.faults.engine import FaultSet
from emulator.faults.rules import ACTION_KINDS, DEVICE_TYPES, SPECIAL_TYPES, VERBS, RuleSpec, Trigger
from emulator.http.setup import DeviceSetupPage
from emulator.sim.devices import DEVICE_CLASSES
from emulator.version import __version__

HTML = "text/html; charset=utf-8"
PANEL_PATH = "/emulator/panel"
STATIC_PATH = f"{PANEL_PATH}/static"
#: The files under emulator/static/ the panel serves, and their types.
STATIC_FILES = {"panel.js": "text/javascript; charset=utf-8", "panel.css": "text/css; charset=utf-8"}
#: Milliseconds between the page's polls of the control API.
POLL_MS = 1000


class PanelSource(Protocol):
    """What the panel shows (an :class:`emulator.Emulator` or a :class:`proxy.Proxy`)."""

    faults: FaultSet

    def device_views(self) -> list[dict[str, Any]]:
        """The devices as ``GET /emulator/v1/devices`` lists them (what panel.js polls)."""
        ...


@functools.cache
def _static(name: str) -> bytes:
    return resources.files("emulator").joinpath("static", name).read_bytes()


@functools.cache
def _page_config_base() -> dict[str, Any]:
    """What the script needs to build the rule form: the rule model's JSON schema and its names."""
    return {
        "api": PREFIX,
        "poll_ms": POLL_MS,
        "schema": RuleSpec.model_json_schema(),
        "kinds": list(ACTION_KINDS),
        "device_types": list(DEVICE_TYPES + SPECIAL_TYPES),
        "verbs": list(VERBS),
    }


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _value_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _device_card(dev: dict[str, Any], previews: bool) -> str:
    dtype, number, state = dev["device_type"], dev["device_number"], dev.get("state") or {}
    key = f"{dtype}/{number}"
    rows = "".join(
        f"<tr data-key='{_e(k)}'><th>{_e(k)}</th><td class='value{' long' if len(_value_text(v)) > 12 else ''}'>"
        f"{_e(_value_text(v))}</td><td class='control'></td></tr>"
        for k, v in state.items()
    )
    preview = ""
    if dtype == "camera" and previews:
        preview = (
            f"<figure class='preview'><img data-camera='{number}' alt='latest frame of camera {number}' hidden>"
            "<figcaption class='preview-note'>No frame yet: take an exposure.</figcaption></figure>"
        )
    return (
        f"<section class='device' data-device='{_e(key)}'>"
        f"<h3><a href='/setup/v1/{_e(dtype)}/{number}/setup'>{_e(dtype)} {number}</a>"
        f" <span class='name'>{_e(dev['name'])}</span></h3>"
        f"<p class='device-note'>{_e(dev.get('note') or '')}</p>"
        f"<p class='device-error' role='alert'></p>{preview}"
        f"<table class='state'><tbody>{rows}</tbody></table></section>"
    )


def _summary(part: dict[str, Any], skip: tuple[str, ...] = ()) -> str:
    return " ".join(f"{k}={_value_text(v)}" for k, v in part.items() if v not in (None, "") and k not in skip) or "any"


_TRIGGER_DEFAULTS = Trigger().model_dump()


def _trigger_text(trigger: dict[str, Any]) -> str:
    changed = {k: v for k, v in trigger.items() if k != "seed" and v != _TRIGGER_DEFAULTS.get(k)}
    return _summary(changed) if changed else "always"


def _action_text(action: dict[str, Any]) -> str:
    """The action's parameters that differ from the kind's defaults."""
    fields = REGISTRY[action["kind"]].model_fields
    changed = {k: v for k, v in action.items() if k != "kind" and not (k in fields and fields[k].default == v)}
    return _summary(changed) if changed else ""


def _actions_html(rule: dict[str, Any]) -> str:
    """A rule's actions as its row shows them: ``<b>latency</b> ms=500 + <b>bad_json</b>``."""
    actions = rule.get("actions") or [rule["action"]]
    parts = []
    for action in actions:
        params = _action_text(action)
        parts.append(f"<b>{_e(action['kind'])}</b>" + (f" {_e(params)}" if params else ""))
    return " + ".join(parts)


def _relevant(rule: dict[str, Any], focus: dict[str, Any] | None) -> bool:
    match = rule.get("match") or {}
    return focus is None or (match.get("device_type") in (None, focus["device_type"])
                             and match.get("device_number") in (None, focus["device_number"]))


def _rule_row(rule: dict[str, Any]) -> str:
    enabled = rule.get("enabled", True)
    return (
        f"<tr data-rule='{_e(rule['id'])}' class='{'' if enabled else 'disabled'}'>"
        f"<td class='id'>{_e(rule['id'])}</td><td class='rule-name'>{_e(rule.get('name') or '')}</td>"
        f"<td class='match'>{_e(_summary(rule.get('match') or {}))}</td>"
        f"<td class='action'>{_actions_html(rule)}</td>"
        f"<td class='trigger'>{_e(_trigger_text(rule.get('trigger') or {}))}</td>"
        f"<td class='matched'>{rule.get('matched', 0)}</td><td class='fired'>{rule.get('fired', 0)}</td>"
        "<td class='buttons'></td></tr>"
    )


def _options(values: list[str], blank: str | None = "any", selected: str = "") -> str:
    head = f"<option value=''>{_e(blank)}</option>" if blank is not None else ""
    return head + "".join(f"<option{' selected' if v == selected else ''}>{_e(v)}</option>" for v in values)


def _field(name: str, label: str, control: str) -> str:
    return (
        f"<label class='field'><span>{_e(label)}</span>{control}"
        f"<small class='error' data-error-for='{_e(name)}'></small></label>"
    )


def _rule_form(focus: dict[str, Any] | None) -> str:
    cfg = _page_config_base()
    dtype = focus["device_type"] if focus is not None else ""
    dnum = str(focus["device_number"]) if focus is not None else ""
    trigger = cfg["schema"]["$defs"]["Trigger"]["properties"]
    trigger_fields = "".join(
        _field(f"trigger.{k}", k, f"<input name='trigger.{k}' size='6' title='{_e(p.get('description', ''))}'>")
        for k, p in trigger.items()
    )
    return (
        "<form id='rule-form' autocomplete='off'><h3>Add a rule</h3>"
        "<fieldset><legend>match</legend>"
        + _field("match.device_type", "device_type", f"<select name='match.device_type'>{_options(cfg['device_types'], selected=dtype)}</select>")
        + _field("match.device_number", "device_number", f"<input name='match.device_number' size='4' value='{_e(dnum)}'>")
        + _field("match.member", "member", "<input name='match.member' size='12' placeholder='e.g. imagearray'>")
        + _field("match.verb", "verb", f"<select name='match.verb'>{_options(cfg['verbs'])}</select>")
        + _field("match.path", "path", "<input name='match.path' size='18' placeholder='/api/v1/camera/*'>")
        + "</fieldset><fieldset><legend>action</legend>"
        + _field("action.kind", "kind", f"<select name='action.kind'>{_options(cfg['kinds'], None)}</select>")
        + "<span id='action-params'></span></fieldset>"
        + f"<fieldset><legend>trigger</legend>{trigger_fields}</fieldset>"
        + _field("name", "name", "<input name='name' size='14'>")
        + "<button type='submit'>Add rule</button> <span id='form-message' role='alert'></span></form>"
    )


def render_page(source: PanelSource, focus: dict[str, Any] | None = None, title: str = "alpaca-rehearsal emulator",
                previews: bool = True, note: str | None = None) -> str:
    """The whole page as it is now; ``focus`` (one of ``source.device_views()``) narrows it to
    one device; ``previews`` False leaves the cameras' frame out; ``note`` heads the devices."""
    shown = [focus] if focus is not None else source.device_views()
    rules = [d for d in (r.as_dict() for r in source.faults.list()) if _relevant(d, focus)]
    config = {**_page_config_base(),
              "focus": [focus["device_type"], focus["device_number"]] if focus is not None else None}
    if focus is not None:
        title = f"Setup: {focus['device_type']} {focus['device_number']} ({focus['name']})"
    links = f"<a href='/'>all devices</a> · " if focus is not None else ""
    script_config = json.dumps(config).replace("</", "<\\/")
    traffic_types = _options(list(DEVICE_CLASSES) + ["management", "setup", "simulator"],
                             selected=focus["device_type"] if focus is not None else "")
    devices_note = f"<p class='devices-note'>{_e(note)}</p>" if note else ""
    empty = "" if shown else "<p class='empty'>No devices.</p>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,"><link rel="stylesheet" href="{STATIC_PATH}/panel.css"></head>
<body><header><h1>{_e(title)}</h1>
<p>{links}<a href="/setup">setup</a> · <a href="{PREFIX}/faults">control API</a> · v{_e(__version__)}
· <span id="status">loaded; waiting for the first update</span></p></header>
<main>
<section id="devices"><h2>Devices</h2>{devices_note}{empty}<div class="cards">{''.join(_device_card(d, previews) for d in shown)}</div></section>
<section id="faults"><h2>Fault rules</h2>
<table class="rules"><thead><tr><th>id</th><th>name</th><th>match</th><th>action</th><th>trigger</th><th>matched</th><th>fired</th><th></th></tr></thead>
<tbody>{''.join(_rule_row(r) for r in rules)}</tbody></table>
<p class="empty"{' hidden' if rules else ''}>No fault rules: every request is answered normally.</p>
<p><button type="button" id="remove-all">Remove every rule</button> <span id="rules-message" role="alert"></span></p>
{_rule_form(focus)}</section>
<section id="traffic"><h2>Traffic</h2>
<form id="traffic-filters">device_type <select name="device_type">{traffic_types}</select>
device_number <input name="device_number" size="3" value="{_e(focus['device_number']) if focus is not None else ''}">
member <input name="member" size="12"> verb <select name="verb">{_options(['GET', 'PUT'])}</select>
rule <input name="rule" size="6"> last <input name="limit" size="4" value="50">
<label><input type="checkbox" name="paused"> pause</label>
<small class="error" data-error-for="traffic"></small></form>
<table class="log"><thead><tr><th>time</th><th>client</th><th>verb</th><th>path</th><th>status</th><th>error</th><th>outcome</th><th>rules</th><th>ms</th></tr></thead><tbody></tbody></table>
</section></main>
<script type="application/json" id="panel-config">{script_config}</script>
<script src="{STATIC_PATH}/panel.js"></script></body></html>"""


def _refusal_page(message: str, ask_token: bool) -> str:
    form = (
        "<form method='get'><label>Control token <input type='password' name='token' autofocus></label> "
        "<button>Open the panel</button></form>"
        if ask_token
        else ""
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Web panel: no access</title></head>"
        f"<body><h1>No access to the web panel</h1><p>{_e(message)}</p>{form}</body></html>"
    )


class _Page:
    def __init__(self, source: PanelSource, token: str | None, title: str, previews: bool = True,
                 note: str | None = None) -> None:
        self.source = source
        self.token = token
        self.title = title
        self.previews = previews
        self.note = note

    def render(self, focus: dict[str, Any] | None = None) -> str:
        return render_page(self.source, focus, self.title, self.previews, self.note)

    def admit(self, req: falcon.Request, resp: falcon.Response) -> bool:
        """The control API's access rule; ``?token=`` that matches becomes a cookie and a redirect."""
        given = req.get_param("token")
        if self.token is not None and given is not None and token_matches(given, self.token):
            resp.set_cookie(TOKEN_COOKIE, given, path="/", http_only=True, same_site="Strict",
                            secure=req.scheme == "https")
            resp.status = falcon.HTTP_303
            resp.location = quote(req.path)
            return False
        refused = access_error(req, self.token)
        if refused is None:
            return True
        status, message = refused
        resp.status = status
        if self.token is not None:
            message = "This server's control API needs its control token." + (
                " That token was wrong." if given is not None else ""
            )
        resp.content_type = HTML
        resp.text = _refusal_page(message, self.token is not None)
        return False


class PanelPage(_Page):
    """``/`` and ``/emulator/panel``: the whole panel."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self.admit(req, resp):
            resp.content_type = HTML
            resp.cache_control = ["no-store"]
            resp.text = self.render()


class DevicePanelPage(_Page):
    """``/setup/v1/{type}/{n}/setup``: the panel about one device; the plain setup page otherwise."""

    def __init__(self, source: PanelSource, token: str | None, title: str, plain: DeviceSetupPage, previews: bool = True,
                 note: str | None = None) -> None:
        super().__init__(source, token, title, previews, note)
        self.plain = plain

    def on_get(self, req: falcon.Request, resp: falcon.Response, device_type: str, device_number: str) -> None:
        device = None
        if access_error(req, self.token) is None and device_type in DEVICE_CLASSES and device_number.isdigit():
            key = (device_type, int(device_number))
            device = next((d for d in self.source.device_views() if (d["device_type"], d["device_number"]) == key), None)
        if device is None:
            self.plain.on_get(req, resp, device_type, device_number)
            return
        resp.content_type = HTML
        resp.cache_control = ["no-store"]
        resp.text = self.render(device)


class StaticFile:
    """The panel's script and style sheet, from the package (no build step, nothing fetched)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        kind = STATIC_FILES.get(name)
        if kind is None:
            resp.status = falcon.HTTP_404
            resp.content_type = "application/json"
            resp.data = json.dumps({"error": f"no panel file {name!r}; files: {', '.join(STATIC_FILES)}"}).encode()
            return
        resp.content_type = kind
        resp.cache_control = ["no-cache"]
        resp.data = _static(name)


def add_panel_routes(app: falcon.App, source: PanelSource, registry: Any = None, token: str | None = None,
                     title: str = "alpaca-rehearsal emulator", at_root: bool = True, setup_pages: bool = True,
                     previews: bool = True, note: str | None = None) -> None:
    """Mount the panel on ``app`` (after the control API); ``at_root`` False leaves ``/`` to whoever
    else answers it (a profile whose ``GET /`` is part of the API it imitates); ``setup_pages``
    False leaves the devices' setup URLs alone (the control port has none; a proxy forwards
    them), True needs the ``registry`` for the plain setup page; ``previews`` False: no camera
    frames (a proxy's cameras are the upstream's); ``note`` is shown above the devices."""
    page = PanelPage(source, token, title, previews, note)
    if at_root:
        app.add_route("/", page)
    app.add_route(PANEL_PATH, page)
    app.add_route(f"{STATIC_PATH}/{{name}}", StaticFile())
    if setup_pages:
        # replaces the plain setup page's route; the plain page stays for clients without access
        app.add_route("/setup/v1/{device_type}/{device_number}/setup",
                      DevicePanelPage(source, token, title, DeviceSetupPage(registry), previews, note))
