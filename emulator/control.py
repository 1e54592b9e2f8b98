"""The control API, ``/emulator/v1/``: steer a running emulator over HTTP, in JSON.

    GET    /emulator/v1/faults                  the rules, in the order they apply
    POST   /emulator/v1/faults                  add a rule -> 201 and the rule with its "id"
    DELETE /emulator/v1/faults                  remove every rule
    GET    /emulator/v1/faults/{id}             one rule, with its "matched"/"fired" counters
    PATCH  /emulator/v1/faults/{id}             change it in place (a partial rule: enabled, action
                                                parameters, actions by index, trigger, match, name,
                                                set); counters kept
    DELETE /emulator/v1/faults/{id}             remove one rule
    GET    /emulator/v1/faultsets               the named rule sets: name, rules, which are enabled
    GET    /emulator/v1/faultsets/{name}        one set
    PUT    /emulator/v1/faultsets/{name}        {"enabled": false}: switch all its rules off (or on)
    GET    /emulator/v1/traffic                 the request log; filters as query parameters:
                                                device_type, device_number, member, verb, since, rule, limit
    DELETE /emulator/v1/traffic                 clear it
    GET    /emulator/v1/devices                 every device: type, number, name, state, settable names
                                                (a proxy: its upstream's devices, state read from it)
    GET    /emulator/v1/devices/{type}/{n}/state   simulated state, e.g. {"IsSafe": true, ...}
    PUT    /emulator/v1/devices/{type}/{n}/state   set some of it: {"IsSafe": false}
    POST   /emulator/v1/reset                   configured device state back, every rule removed
    GET    /emulator/v1/camera/{n}/preview.png  the camera's latest frame as a PNG (404 before the first)

It lives outside ``/api/`` and ``/management/`` so a conformance checker never sees it, and its
errors are JSON with a 4xx status (the Alpaca 400-plain-text rule is for the Alpaca namespace).
Fault rules never match it and the traffic log never records it. It is served twice: on the
devices' port (compatibility; an outage of that port, ``refuse``/``down``, takes it away for the
outage's window) and, with ``control_port``, on a listener of its own (:class:`ControlListener`)
that no fault layer serves, so no rule can reach it and a rule can always be removed. Access
(:func:`access_error`): with a token, every call needs ``Authorization: Bearer <token>`` (or
``X-Control-Token``, or the web panel's cookie); without one, only loopback clients are served.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from typing import Any, Callable, Protocol

import falcon

from emulator.faults.engine import FaultSet
from emulator.faults.rules import FaultRuleError
from emulator.http.png import encode_png, from_imagearray
from emulator.serve.server import BackgroundServer
from emulator.serve.sockets import FaultLayer
from emulator.serve.traffic import TrafficLog

log = logging.getLogger(__name__)

PREFIX = "/emulator/v1"
JSON = "application/json"
#: The cookie the web panel sets from a token typed into its form (HttpOnly, SameSite=Strict), so
#: a browser's fetches carry the token without the page's script ever holding it.
TOKEN_COOKIE = "emulator_control_token"
#: The longer side of a camera preview, in pixels: larger frames are binned down to fit.
PREVIEW_MAX_SIDE = 1024


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost'."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _send(resp: falcon.Response, status: int, doc: Any) -> None:
    resp.status = status
    resp.content_type = JSON
    resp.data = json.dumps(doc).encode()


def _error(resp: falcon.Response, status: int, message: str, **extra: Any) -> None:
    _send(resp, status, {"error": message, **extra})


def _read_json(req: falcon.Request, resp: falcon.Response) -> tuple[bool, Any]:
    """The request body as JSON; on failure answers 400 and returns (False, None)."""
    raw = req.bounded_stream.read(req.content_length or 0) if req.content_length else req.bounded_stream.read()
    try:
        return True, json.loads(raw or b"null")
    except ValueError as exc:
        _error(resp, 400, f"request body is not valid JSON: {exc}")
        return False, None


def token_matches(given: str, token: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


def access_error(req: falcon.Request, token: str | None) -> tuple[int, str] | None:
    """Why ``req`` may not steer the emulator, as (status, message); None when it may.

    With a token: the bearer header, ``X-Control-Token`` or the panel's cookie must carry it
    (401). Without one: loopback clients only (403). The web panel applies the same rule."""
    if token is None:
        if is_loopback(req.remote_addr or ""):
            return None
        return 403, "the control API is served beyond loopback only with a control token (--control-token)"
    given = req.get_header("X-Control-Token") or ""
    auth = req.get_header("Authorization") or ""
    if auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    if token_matches(given, token) or token_matches(req.cookies.get(TOKEN_COOKIE, ""), token):
        return None
    return 401, "missing or wrong control token (send 'Authorization: Bearer <token>')"


def device_view(dev: Any) -> dict[str, Any]:
    """A simulated device as ``GET /devices`` lists it (and the web panel shows it)."""
    with dev.lock:
        state = dev.get_state()
        settable = {name: kind.__name__ for name, (kind, _) in dev.state_setters().items()}
    return {"device_type": dev.device_type, "device_number": dev.number, "name": dev.name,
            "state": state, "settable": settable}


class Steerable(Protocol):
    """What the control API steers: an :class:`emulator.Emulator`, or a :class:`proxy.Proxy`
    (whose ``device`` raises KeyError: its devices are its upstream's)."""

    faults: FaultSet
    traffic: TrafficLog

    def device(self, device_type: str, number: int = 0) -> Any: ...

    def device_views(self) -> list[dict[str, Any]]:
        """Every device as ``GET /devices`` answers: device_type, device_number, name, state,
        settable (name -> bool/int/float/str/object/dict), optionally a ``note`` for a person."""
        ...

    def reset(self) -> None: ...


class _Resource:
    def __init__(self, emu: Steerable, token: str | None) -> None:
        self.emu = emu
        self.token = token

    def allowed(self, req: falcon.Request, resp: falcon.Response) -> bool:
        """Token check, or loopback-only when there is no token; answers 401/403 itself."""
        refused = access_error(req, self.token)
        if refused is not None:
            _error(resp, *refused)
        return refused is None

    def body(self, req: falcon.Request, resp: falcon.Response) -> tuple[bool, Any]:
        """``allowed``, then the JSON body; (False, None) once either has answered the error."""
        if not self.allowed(req, resp):
            return False, None
        return _read_json(req, resp)


class FaultsResource(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self.allowed(req, resp):
            _send(resp, 200, [r.as_dict() for r in self.emu.faults.list()])

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        ok, doc = self.body(req, resp)
        if not ok:
            return
        try:
            rule = self.emu.faults.add(doc)
        except FaultRuleError as exc:
            _rule_error(resp, exc)
            return
        _send(resp, 201, rule.as_dict())

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self.allowed(req, resp):
            n = len(self.emu.faults)
            self.emu.faults.clear()
            _send(resp, 200, {"removed": n})


class FaultResource(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, rule_id: str) -> None:
        if not self.allowed(req, resp):
            return
        try:
            _send(resp, 200, self.emu.faults.get(rule_id).as_dict())
        except KeyError:
            _error(resp, 404, f"no fault rule with id {rule_id!r}")

    def on_patch(self, req: falcon.Request, resp: falcon.Response, rule_id: str) -> None:
        ok, doc = self.body(req, resp)
        if not ok:
            return
        try:
            rule = self.emu.faults.update(rule_id, doc if doc is not None else {})
        except KeyError:
            _error(resp, 404, f"no fault rule with id {rule_id!r}")
            return
        except FaultRuleError as exc:
            _rule_error(resp, exc)
            return
        _send(resp, 200, rule.as_dict())

    def on_delete(self, req: falcon.Request, resp: falcon.Response, rule_id: str) -> None:
        if not self.allowed(req, resp):
            return
        try:
            self.emu.faults.remove(rule_id)
        except KeyError:
            _error(resp, 404, f"no fault rule with id {rule_id!r}")
            return
        _send(resp, 200, {"removed": rule_id})


def _rule_error(resp: falcon.Response, exc: FaultRuleError) -> None:
    _error(resp, 400, str(exc), errors=[{"field": f, "message": m} for f, m in exc.errors])


def _set_doc(name: str, rules: list) -> dict[str, Any]:
    return {"name": name, "rules": [r.id for r in rules], "enabled": [r.id for r in rules if r.spec.enabled]}


class FaultSetsResource(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self.allowed(req, resp):
            _send(resp, 200, [_set_doc(name, rules) for name, rules in self.emu.faults.sets().items()])


class FaultSetResource(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        if not self.allowed(req, resp):
            return
        rules = self.emu.faults.sets().get(name)
        if rules is None:
            _error(resp, 404, f"no fault rule in set {name!r}")
            return
        _send(resp, 200, _set_doc(name, rules))

    def on_put(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        ok, doc = self.body(req, resp)
        if not ok:
            return
        if not isinstance(doc, dict) or set(doc) != {"enabled"} or not isinstance(doc["enabled"], bool):
            _error(resp, 400, 'the body must be {"enabled": true} or {"enabled": false}', field="enabled")
            return
        try:
            rules = self.emu.faults.enable_set(name, doc["enabled"])
        except KeyError:
            _error(resp, 404, f"no fault rule in set {name!r}")
            return
        _send(resp, 200, _set_doc(name, rules))


_TRAFFIC_FILTERS = {"device_type": str, "device_number": int, "member": str, "verb": str, "since": float, "rule": str}


class TrafficResource(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not self.allowed(req, resp):
            return
        filters: dict[str, Any] = {}
        limit = None
        for key, value in req.params.items():
            if isinstance(value, list):
                value = value[-1]
            kind = int if key == "limit" else _TRAFFIC_FILTERS.get(key)
            if kind is None:
                _error(resp, 400, f"unknown traffic filter {key!r}; valid: {', '.join([*_TRAFFIC_FILTERS, 'limit'])}", field=key)
                return
            try:
                converted = kind(value)
            except ValueError:
                _error(resp, 400, f"traffic filter {key!r} must be {kind.__name__}, got {value!r}", field=key)
                return
            if key == "limit":
                limit = converted
            else:
                filters[key] = converted
        entries = self.emu.traffic.entries(**filters)
        if limit is not None:
            entries = entries[-limit:] if limit > 0 else []
        _send(resp, 200, [e.as_dict() for e in entries])

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self.allowed(req, resp):
            n = len(self.emu.traffic)
            self.emu.traffic.clear()
            _send(resp, 200, {"removed": n})


class DevicesResource(_Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not self.allowed(req, resp):
            return
        _send(resp, 200, self.emu.device_views())


class PreviewResource(_Resource):
    """The camera's latest frame for a person to look at: stretched, binned to fit, PNG."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, device_number: str) -> None:
        if not self.allowed(req, resp):
            return
        if not device_number.isdigit():
            _error(resp, 404, f"device number must be a non-negative integer, got {device_number!r}")
            return
        try:
            cam = self.emu.device("camera", int(device_number))
        except KeyError as exc:
            _error(resp, 404, str(exc.args[0]) if exc.args else "no such camera")
            return
        with cam.lock:
            frame = cam.latest_frame()
        if frame is None:
            _error(resp, 404, f"camera {int(device_number)} has no frame yet: take an exposure and wait for ImageReady")
            return
        resp.status = 200
        resp.content_type = "image/png"
        resp.cache_control = ["no-store"]
        resp.data = encode_png(_fit(from_imagearray(frame), PREVIEW_MAX_SIDE))


def _fit(picture: Any, max_side: int) -> Any:
    """``picture`` (rows, columns[, planes]) binned by the smallest whole factor that fits ``max_side``."""
    rows, cols = picture.shape[:2]
    factor = -(-max(rows, cols) // max_side)
    if factor <= 1:
        return picture
    rows, cols = rows // factor * factor, cols // factor * factor
    cut = picture[:rows, :cols].astype("float64")
    return cut.reshape(rows // factor, factor, cols // factor, factor, *cut.shape[2:]).mean(axis=(1, 3))


class StateResource(_Resource):
    def _device(self, resp: falcon.Response, device_type: str, device_number: str):
        if not device_number.isdigit():
            _error(resp, 404, f"device number must be a non-negative integer, got {device_number!r}")
            return None
        try:
            return self.emu.device(device_type, int(device_number))
        except KeyError as exc:
            _error(resp, 404, str(exc.args[0]) if exc.args else "no such device")
            return None

    def on_get(self, req: falcon.Request, resp: falcon.Response, device_type: str, device_number: str) -> None:
        if not self.allowed(req, resp):
            return
        dev = self._device(resp, device_type, device_number)
        if dev is not None:
            with dev.lock:
                _send(resp, 200, dev.get_state())

    def on_put(self, req: falcon.Request, resp: falcon.Response, device_type: str, device_number: str) -> None:
        if not self.allowed(req, resp):
            return
        dev = self._device(resp, device_type, device_number)
        if dev is None:
            return
        ok, doc = _read_json(req, resp)
        if not ok:
            return
        if not isinstance(doc, dict):
            _error(resp, 400, 'the body must be a JSON object of state names and values, e.g. {"IsSafe": false}')
            return
        try:
            with dev.lock:
                dev.set_state(doc)
                state = dev.get_state()
        except (KeyError, TypeError, ValueError) as exc:
            _error(resp, 400, str(exc.args[0]) if exc.args else str(exc))
            return
        _send(resp, 200, state)


class ResetResource(_Resource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self.allowed(req, resp):
            self.emu.reset()
            _send(resp, 200, {"reset": True})


def add_control_routes(app: falcon.App, emu: Steerable, token: str | None = None) -> None:
    """Mount the control API on ``app`` for ``emu``; anything else under it is a JSON 404."""
    app.add_route(f"{PREFIX}/faults", FaultsResource(emu, token))
    app.add_route(f"{PREFIX}/faults/{{rule_id}}", FaultResource(emu, token))
    app.add_route(f"{PREFIX}/faultsets", FaultSetsResource(emu, token))
    app.add_route(f"{PREFIX}/faultsets/{{name}}", FaultSetResource(emu, token))
    app.add_route(f"{PREFIX}/traffic", TrafficResource(emu, token))
    app.add_route(f"{PREFIX}/devices", DevicesResource(emu, token))
    app.add_route(f"{PREFIX}/devices/{{device_type}}/{{device_number}}/state", StateResource(emu, token))
    app.add_route(f"{PREFIX}/reset", ResetResource(emu, token))
    app.add_route(f"{PREFIX}/camera/{{device_number}}/preview.png", PreviewResource(emu, token))

    def unknown(req: falcon.Request, resp: falcon.Response, **_: Any) -> None:
        _error(resp, 404, f"{req.method} {req.path} is not part of the control API (see emulator/control.py)")

    app.add_sink(unknown, "/emulator/")


def control_app(emu: Steerable, token: str | None = None, mount: Callable[[falcon.App], None] | None = None) -> falcon.App:
    """A Falcon app that serves the control API alone (no device, no middleware); ``mount`` adds
    routes of the operator's beside it (the emulator's web panel)."""
    app = falcon.App()

    def elsewhere(req: falcon.Request, resp: falcon.Response, **_: Any) -> None:
        _error(resp, 404, f"this port serves the control API only, under {PREFIX}/; {req.path} is on the devices' port")

    app.add_sink(elsewhere, "/")
    add_control_routes(app, emu, token)
    if mount is not None:
        mount(app)
    return app


class ControlListener:
    """The control API on a port of its own, so no fault rule can ever make it unreachable.

    Over HTTP it is plain waitress: no fault layer, nothing a rule could act on, its own loop and
    worker threads, its own listening socket that an outage of the devices' port never touches.
    Over HTTPS it needs the TLS channel, which lives in the fault layer, so it gets a private
    layer with an empty rule set (the emulator's rules are not in it) and a throwaway log.
    """

    def __init__(
        self, emu: Steerable, host: str, port: int, token: str | None = None, ssl_context: Any = None, clock: Any = None,
        mount: Callable[[falcon.App], None] | None = None,
    ) -> None:
        layer = None
        if ssl_context is not None:
            clock = clock if clock is not None else emu.faults.clock
            layer = FaultLayer(FaultSet(clock), TrafficLog(1), clock)
        self.https = ssl_context is not None
        try:
            self._server = BackgroundServer(control_app(emu, token, mount), host, port, threads=2, layer=layer, ssl_context=ssl_context)
        except OSError as exc:  # say which port it was: the devices' one is bound already
            raise OSError(exc.errno, f"control port {port}: {exc.strerror or exc}") from None
        self.host, self.port = self._server.host, self._server.port

    @property
    def url(self) -> str:
        """Where the control API is: ``http://HOST:PORT/emulator/v1``."""
        return f"{'https' if self.https else 'http'}://{self.host}:{self.port}{PREFIX}"

    def start(self) -> "ControlListener":
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
