"""The fault proxy: an Alpaca server's devices, unchanged, behind the emulator's fault rules.

    with Proxy("192.168.1.20:11111") as proxy:      # a real mount, OmniSim, another emulator
        proxy.faults.add({"match": {"member": "slewtoazimuth"}, "action": {"kind": "drop"}})
        dome = alpaca.dome.Dome(proxy.address, 0)   # every other member answers as upstream does

Modules, in the order a request passes them:

    upstream     keep-alive HTTP connections to the upstream, one per worker thread; answer framing
    devices      the upstream's devices and their state, read past the rules (the web panel's)
    messages     which parts of a request go upstream and of an answer come back
    passthrough  the fast path: a request no rule can touch, forwarded by the loop thread
    forward      the WSGI app that forwards (and the control API, and the fault middleware),
                 the waitress task that turns an upstream failure into a cut connection, and
                 the server that hands the passthrough what it can take
    replay       a recorded session sent again, every answer that differs reported
    cli          alpaca-proxy (serve) and alpaca-proxy replay

The serving front is the emulator's own: :mod:`emulator.serve` (waitress, the socket-level
faults, the traffic log, discovery), :mod:`emulator.faults` (rules, engine, middleware) and
:mod:`emulator.control` (``/emulator/v1``), :mod:`emulator.panel` (the web panel at ``/``);
only the app behind it differs.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from emulator.control import ControlListener, PREFIX, is_loopback
from emulator.faults.engine import FaultSet
from emulator.panel import add_panel_routes
from emulator.serve.discovery import DiscoveryResponder
from emulator.serve.recording import Recorder
from emulator.serve.sockets import FaultLayer
from emulator.serve.traffic import TrafficLog
from proxy.devices import UpstreamDevices
from proxy.forward import Forwarder, ProxyBackgroundServer
from proxy.passthrough import Passthrough
from proxy.upstream import Upstream, parse_address

__all__ = ["Proxy"]

log = logging.getLogger(__name__)


class WallClock:
    """Seconds since the proxy was made: the proxy has no simulation, so trigger windows run on
    the wall clock."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._t0


class Proxy:
    """Serve ``upstream`` (``"HOST:PORT"``) on ``host:port`` (0 = a free port) through fault rules.

    ``proxy.faults`` and ``proxy.traffic`` are the emulator's :class:`~emulator.faults.FaultSet`
    and :class:`~emulator.serve.traffic.TrafficLog`; the control API (``/emulator/v1``) steers
    them (``control=False`` turns it off, ``control_token`` protects it; ``control_port``, 0 for a
    free one, serves it on a listener of its own too, which no rule reaches) and the web panel,
    at ``/`` and ``/emulator/panel`` (and the control port's ``/``): the upstream's devices with
    their state read from the upstream, the rules, the traffic. ``discovery_port``
    (None: off, 0: a free port) answers discovery with the proxy's own port, so a client that
    discovers finds the upstream's devices through the proxy. ``upstream_timeout_s`` is how long
    an answer may take. ``record`` writes every exchange to a JSON Lines file. ``seed`` seeds the
    rules' random triggers.
    """

    def __init__(
        self,
        upstream: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        threads: int = 8,
        discovery_port: int | None = None,
        control: bool = True,
        control_token: str | None = None,
        control_port: int | None = None,
        upstream_timeout_s: float = 60.0,
        traffic_maxlen: int = 10000,
        record: str | Path | None = None,
        seed: int = 0,
    ) -> None:
        self.upstream_host, self.upstream_port = parse_address(upstream)
        self.host = host
        self._requested_port = port
        self._threads = threads
        self._discovery_port = discovery_port
        self.control = control
        self.control_token = control_token or None
        self.requested_control_port = control_port
        self._control: ControlListener | None = None
        self.upstream_timeout_s = upstream_timeout_s
        self.clock = WallClock()
        self.faults = FaultSet(self.clock, seed)
        self.traffic = TrafficLog(traffic_maxlen)
        self.record = Path(record) if record is not None else None
        self.recorder: Recorder | None = None
        self.upstream: Upstream | None = None
        self.upstream_devices: UpstreamDevices | None = None
        self._server: ProxyBackgroundServer | None = None
        self._discovery: DiscoveryResponder | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> "Proxy":
        if self._server is not None:
            raise RuntimeError("proxy already started")
        self.upstream = Upstream(self.upstream_host, self.upstream_port, self.upstream_timeout_s)
        self.upstream_devices = UpstreamDevices(self.upstream_host, self.upstream_port, self.upstream_timeout_s)
        app: Any = Forwarder(self.upstream, self, self.control, self.control_token, mount=self._panel)
        if self.control and self.control_token is None and not is_loopback(self.host):
            log.warning("control API served to loopback clients only: no control token while bound to %s", self.host)
        layer = FaultLayer(self.faults, self.traffic, self.clock)
        try:
            if self.record is not None:
                self.recorder = Recorder(self.record)
                app = self.recorder.wrap(app)
            self._server = ProxyBackgroundServer(app, self.host, self._requested_port, threads=self._threads, layer=layer)
            if self.recorder is None:  # the fast path records nothing, so it is off while recording
                self._server.server.passthrough = Passthrough(self._server.server, self.upstream, layer, max_links=self._threads)
            if self.control and self.requested_control_port is not None:
                self._control = ControlListener(self, self.host, self.requested_control_port, self.control_token, None, self.clock,
                                                mount=self._panel)
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
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None
        if self.upstream_devices is not None:
            self.upstream_devices.close()
            self.upstream_devices = None
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None

    def __enter__(self) -> "Proxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- where it is -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("proxy is not running: use it as a context manager or call start()")
        return self._server.port

    @property
    def address(self) -> str:
        """``host:port``, as alpyca takes it."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def discovery_port(self) -> int | None:
        return self._discovery.port if self._discovery is not None else None

    @property
    def control_port(self) -> int | None:
        """The control API's own port (None: served on the proxy's port only)."""
        self.port  # noqa: B018 - raises when not running
        return self._control.port if self._control is not None else None

    @property
    def panel_url(self) -> str | None:
        """The web panel: on the control API's own port if there is one (no rule reaches it), else
        on the proxy's port; None with the control API off."""
        if not self.control:
            return None
        return self._control.url.removesuffix(PREFIX) + "/" if self.control_port is not None else f"{self.url}/"

    @property
    def control_url(self) -> str:
        """The control API's own listener if there is one, else ``<url>/emulator/v1``."""
        return self._control.url if self.control_port is not None else f"{self.url}{PREFIX}"

    # -- what the control API steers ----------------------------------------------------------------

    def device(self, device_type: str, number: int = 0) -> Any:
        raise KeyError(f"the proxy simulates no devices: {device_type} {number} is the upstream's ({self.upstream_host}:{self.upstream_port})")

    def devices(self) -> list:
        """None: the devices are the upstream's (:meth:`device_views` lists them)."""
        return []

    def device_views(self) -> list[dict[str, Any]]:
        """The upstream's devices as the control API's ``GET /devices`` lists them: its device
        list, a few members' values read from it directly (past the rules), nothing settable."""
        return self.upstream_devices.views() if self.upstream_devices is not None else []

    def _panel(self, app: Any) -> None:
        """The emulator's web panel, showing the upstream's devices: no setup pages (the proxy
        forwards the upstream's), no camera preview, a note that the state is the upstream's."""
        where = f"{self.upstream_host}:{self.upstream_port}"
        add_panel_routes(
            app, self, token=self.control_token, title=f"alpaca-proxy for {where}", setup_pages=False, previews=False,
            note=f"The devices and their state are the upstream's ({where}), read from it directly, past the fault "
            "rules; set state there. The proxy's rules change only what its clients see.",
        )

    def reset(self) -> None:
        """Remove every fault rule (the upstream's devices are not the proxy's to reset)."""
        self.faults.clear()
