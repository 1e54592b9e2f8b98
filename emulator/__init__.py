"""The Alpaca device emulator: ``Emulator`` is its public face.

    with Emulator() as emu:                 # one device of each type, on a free port
        cam = alpaca.camera.Camera(emu.address, 0)

A request's way through, and the sub-package that holds each step::

    socket ─> serve/ (waitress, socket-level faults, traffic log) ─> http/ (Falcon app, fault
    middleware from faults/) ─> sim/ (device models on one clock)

Everything an emulator holds (devices, clock, transaction counter) belongs to that instance,
so several emulators in one process, or one per pytest-xdist worker, never share state.
"""

from __future__ import annotations

import logging
import ssl
import tempfile
from pathlib import Path
from typing import Any

from emulator.config import EmulatorConfig, config_from_dict, default_config, load_config, profile_config, with_profile
from emulator.control import ControlListener, add_control_routes, device_view, is_loopback
from emulator.faults.engine import FaultSet
from emulator.faults.middleware import FaultMiddleware
from emulator.http.app import build_app
from emulator.http.auth import AuthMiddleware, Credentials
from emulator.http.management import ServerDescription
from emulator.http.protocol import ServerTransactions
from emulator.panel import add_panel_routes
from emulator.serve.discovery import DiscoveryResponder
from emulator.serve.recording import Recorder
from emulator.serve.certificate import make_self_signed
from emulator.serve.server import BackgroundServer
from emulator.serve.sockets import FaultLayer
from emulator.serve.traffic import TrafficLog
from emulator.sim.registry import Registry
from emulator.version import __version__

__all__ = ["Emulator", "__version__"]

log = logging.getLogger(__name__)


class Emulator:
    """Serve simulated Alpaca devices in the background of this process.

    ``config`` is an :class:`~emulator.config.EmulatorConfig`, a dict of the same shape, or a
    path to a TOML file; None serves one device of each type. ``profile`` names a shipped profile
    (:mod:`emulator.profiles`) to serve, with ``config`` (a dict or file) layered over it. ``time_scale``, ``seed`` and
    ``lenient_ids`` override the config's. ``discovery_port`` None turns discovery off; 0 picks a free port.

    ``emu.faults`` holds the fault rules (:class:`emulator.faults.FaultSet`), ``emu.traffic`` the
    request log (:class:`emulator.serve.traffic.TrafficLog`). ``control`` False turns the HTTP control
    API (``/emulator/v1``) off; ``control_token`` makes it require that token (without one it
    serves loopback clients only). ``control_port`` (0: a free one; None: the config's
    ``control_port``, unset by default) serves the control API on a listener of its own too,
    which no fault rule can reach (``emu.control_url``); in Python ``emu.faults`` needs no socket.

    ``basic_auth`` (``(user, password)`` or ``"user:password"``) and/or ``api_token`` make every
    request but the control API's need those credentials (401 otherwise: :mod:`emulator.http.auth`).
    ``https`` serves TLS with a self-signed certificate made at start (``emu.cert_path``; in
    ``cert_dir`` if given, else a temporary folder removed at stop).

    ``record`` (a path) writes every request and answer to that JSON Lines file while serving
    (:mod:`emulator.serve.recording`); ``emu.recorder`` is the writer.
    """

    def __init__(
        self,
        config: Any = None,
        *,
        profile: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        threads: int = 8,
        time_scale: float | None = None,
        seed: int | None = None,
        lenient_ids: bool | None = None,
        discovery_port: int | None = None,
        control: bool = True,
        control_token: str | None = None,
        control_port: int | None = None,
        traffic_maxlen: int = 10000,
        basic_auth: tuple[str, str] | str | None = None,
        api_token: str | None = None,
        https: bool = False,
        cert_dir: str | Path | None = None,
        record: str | Path | None = None,
    ) -> None:
        if config is None:
            cfg = profile_config(profile, source=f"profile {profile!r}") if profile else default_config()
        elif isinstance(config, EmulatorConfig):
            if profile is not None:
                raise TypeError("profile needs a config dict or file to layer over it, not an EmulatorConfig")
            cfg = config.model_copy(deep=True)
        elif isinstance(config, dict):
            cfg = config_from_dict(with_profile(config, profile, "<config>"))
        elif isinstance(config, (str, Path)):
            cfg = load_config(config, profile)
        else:
            raise TypeError(f"config must be an EmulatorConfig, dict, path or None, not {type(config).__name__}")
        overrides = {
            k: v for k, v in (("time_scale", time_scale), ("seed", seed), ("lenient_ids", lenient_ids)) if v is not None
        }
        if overrides:
            # only the settings are validated again: the devices keep which options were given
            settings = config_from_dict({"emulator": {**cfg.emulator.model_dump(), **overrides}}, "Emulator arguments")
            cfg = cfg.model_copy(update={"emulator": settings.emulator})
        self.config = cfg
        self.host = host
        self._requested_port = port
        self._threads = threads
        self._discovery_port = discovery_port
        self._server = None
        self._discovery = None
        self.registry = None
        self.control = control
        self.control_token = control_token or None
        if control_port is not None and not 0 <= control_port <= 65535:
            raise ValueError(f"control_port must be 0..65535 (0 picks a free port), got {control_port}")
        self.requested_control_port = control_port if control_port is not None else cfg.emulator.control_port
        self._control: ControlListener | None = None
        if isinstance(basic_auth, str):
            basic_auth = Credentials.parse_basic(basic_auth)
        user, password = basic_auth if basic_auth is not None else (None, None)
        self.credentials = Credentials(user, password, api_token) if (basic_auth is not None or api_token) else None
        self.https = https
        self._cert_dir = Path(cert_dir) if cert_dir is not None else None
        self._tmp_cert_dir: tempfile.TemporaryDirectory | None = None
        self.cert_path: Path | None = None
        self.faults = FaultSet(_ClockRef(self), cfg.emulator.seed)
        self.traffic = TrafficLog(traffic_maxlen)
        self._config_rules_added = False
        self.record = Path(record) if record is not None else None
        self.recorder: Recorder | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> "Emulator":
        if self._server is not None:
            raise RuntimeError("emulator already started")
        cfg = self.config
        self.registry = Registry(cfg.devices, cfg.emulator.time_scale, cfg.emulator.seed, sunlight=cfg.emulator.sunlight,
                                 start_utc=cfg.emulator.start_utc)
        settings = cfg.emulator
        description = ServerDescription(settings.server_name, settings.manufacturer, settings.location)
        middleware: list = [FaultMiddleware()]
        if self.credentials is not None:
            middleware.append(AuthMiddleware(self.credentials))  # after the faults: as if they were on the wire
        self.app = build_app(self.registry, description, ServerTransactions(), middleware=middleware,
                             lenient_ids=settings.lenient_ids, alpaca_simulators_api=settings.alpaca_simulators_api)
        if self.control:
            add_control_routes(self.app, self, self.control_token)
            # the web panel takes / unless the profile's own API answers it (alpaca-simulators' JSON)
            at_root = not settings.alpaca_simulators_api
            add_panel_routes(self.app, self, self.registry, self.control_token, settings.server_name, at_root=at_root)
            if self.control_token is None and not is_loopback(self.host):
                log.warning("control API served to loopback clients only: no control token while bound to %s", self.host)
        if not self._config_rules_added:
            self._config_rules_added = True
            for spec in self.config.faults:
                self.faults.add(spec)
        layer = FaultLayer(self.faults, self.traffic, self.registry.clock)
        try:
            ssl_context = self._tls_context() if self.https else None
            served = self.app
            if self.record is not None:
                self.recorder = Recorder(self.record)
                served = self.recorder.wrap(served)
            self._server = BackgroundServer(
                served, self.host, self._requested_port, threads=self._threads, layer=layer, ssl_context=ssl_context
            )
            if self.control and self.requested_control_port is not None:
                def panel(app: Any) -> None:  # the panel at the control port's /, where no rule reaches it
                    add_panel_routes(app, self, self.registry, self.control_token, settings.server_name, setup_pages=False)

                self._control = ControlListener(
                    self, self.host, self.requested_control_port, self.control_token, ssl_context, self.registry.clock,
                    mount=panel,
                )
            if self._discovery_port is not None:
                self._discovery = DiscoveryResponder(self._server.port, self.host, self._discovery_port, hook=layer.discovery_hook)
                self._discovery.start()
            self._server.start()
            if self._control is not None:
                self._control.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._control is not None:
            self._control.stop()
            self._control = None
        if self._discovery is not None:
            self._discovery.stop()
            self._discovery = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None
        if self._tmp_cert_dir is not None:
            self._tmp_cert_dir.cleanup()
            self._tmp_cert_dir = None
            self.cert_path = None

    def _tls_context(self) -> ssl.SSLContext:
        """A fresh self-signed certificate (in ``cert_dir``, else a private temporary folder removed
        at stop) and the server context that uses it."""
        if self._cert_dir is None:
            self._tmp_cert_dir = tempfile.TemporaryDirectory(prefix="alpaca-emulator-tls-")
            directory = Path(self._tmp_cert_dir.name)
        else:
            directory = self._cert_dir
        files = make_self_signed(directory, self.host)
        self.cert_path = files.cert_path
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(files.cert_path, files.key_path)
        return context

    def __enter__(self) -> "Emulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- where it is -------------------------------------------------------------------------------

    def _running(self):
        if self._server is None:
            raise RuntimeError("emulator is not running: use it as a context manager or call start()")
        return self._server

    @property
    def port(self) -> int:
        return self._running().port

    @property
    def address(self) -> str:
        """``host:port``, as alpyca takes it."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.protocol}://{self.address}"

    @property
    def protocol(self) -> str:
        """``http`` or ``https``, as alpyca's ``protocol`` argument takes it."""
        return "https" if self.https else "http"

    @property
    def discovery_port(self) -> int | None:
        return self._discovery.port if self._discovery is not None else None

    @property
    def control_port(self) -> int | None:
        """The control API's own port (None: served on the devices' port only)."""
        self._running()
        return self._control.port if self._control is not None else None

    @property
    def control_url(self) -> str:
        """Where the control API is best reached: its own listener if there is one, else
        ``<url>/emulator/v1`` on the devices' port."""
        self._running()
        return self._control.url if self._control is not None else f"{self.url}/emulator/v1"

    @property
    def panel_url(self) -> str | None:
        """The web panel: on the control API's own port if there is one (no rule reaches it), else
        on the devices' port; None with the control API off."""
        self._running()
        if not self.control:
            return None
        if self._control is not None:
            return self._control.url.removesuffix("/emulator/v1") + "/"
        return f"{self.url}/" if not self.config.emulator.alpaca_simulators_api else f"{self.url}/emulator/panel"

    @property
    def clock(self):
        return self.registry.clock

    # -- devices -----------------------------------------------------------------------------------

    def device(self, device_type: str, number: int = 0):
        """The simulated device model (for assertions and direct state changes)."""
        self._running()
        dev = self.registry.get(device_type.lower(), number)
        if dev is None:
            raise KeyError(f"no {device_type} device {number} in this emulator")
        return dev

    def devices(self) -> list:
        """Every simulated device model, as configured."""
        self._running()
        return list(self.registry)

    def device_views(self) -> list[dict[str, Any]]:
        """Every device as the control API's ``GET /devices`` lists it, in type and number order."""
        return [device_view(d) for d in sorted(self.devices(), key=lambda d: (d.device_type, d.number))]

    def get_state(self, device_type: str, number: int = 0) -> dict[str, Any]:
        dev = self.device(device_type, number)
        with dev.lock:
            return dev.get_state()

    def set_state(self, device_type: str, number: int = 0, **values: Any) -> dict[str, Any]:
        """Set simulated state, e.g. ``emu.set_state("safetymonitor", IsSafe=False)``."""
        dev = self.device(device_type, number)
        with dev.lock:
            dev.set_state(values)
            return dev.get_state()

    def reset(self) -> None:
        """Restore every device to its configured state and remove every fault rule (config ones too)."""
        self._running()
        self.faults.clear()
        self.registry.reset()


class _ClockRef:
    """The running emulator's simulation clock, for fault rules added before or after start."""

    def __init__(self, emu: Emulator) -> None:
        self._emu = emu

    def now(self) -> float:
        registry = self._emu.registry
        return registry.clock.now() if registry is not None else 0.0
