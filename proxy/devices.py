"""The upstream's devices as the proxy's control API lists them and its web panel shows them.

The list is the upstream's management API (``/management/v1/configureddevices``); the state is a
few read-only members per device type (:data:`STATE_MEMBERS`), read from the upstream directly,
not through the proxy's own port: past the fault rules, outside the traffic log and any
recording, so the operator sees what the devices say while the rules change what clients see.
Nothing is settable through the proxy: the devices' state is the upstream's.

The reads cost the upstream requests (a real mount may be slow, a wedged one may not answer), so
one reader thread does them, on demand: a caller gets the latest read at once and, when it is
older than :data:`MIN_INTERVAL_S`, asks for the next, so several panels and both ports cost one
read a second and a hanging upstream holds no control API thread (only the very first caller
waits, for the first read: the page is rendered from it). Each request waits at most
:data:`READ_TIMEOUT_S`, a whole read stops after :data:`READ_BUDGET_S`, and nothing is read
while no one asks. A disconnected device has only ``Connected`` read. When the upstream does
not answer, the last list it gave is shown with empty state and a note saying why.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from typing import Any

#: What the panel shows of each device type: cheap, read-only members every driver has.
STATE_MEMBERS: dict[str, tuple[str, ...]] = {
    "camera": ("CameraState", "ImageReady", "CCDTemperature", "CoolerOn"),
    "covercalibrator": ("CoverState", "CalibratorState", "Brightness"),
    "dome": ("Azimuth", "ShutterStatus", "Slewing", "AtHome", "AtPark"),
    "filterwheel": ("Position",),
    "focuser": ("Position", "IsMoving", "Temperature"),
    "observingconditions": ("CloudCover", "Humidity", "Temperature", "WindSpeed", "RainRate"),
    "rotator": ("Position", "MechanicalPosition", "IsMoving"),
    "safetymonitor": ("IsSafe",),
    "switch": ("MaxSwitch",),
    "telescope": ("RightAscension", "Declination", "Altitude", "Azimuth", "Tracking", "Slewing", "AtPark"),
}
#: Seconds one read of the upstream's devices serves.
MIN_INTERVAL_S = 1.0
#: Seconds one request to the upstream may take (at most the proxy's upstream timeout).
READ_TIMEOUT_S = 3.0
#: Seconds a whole read may take; devices not reached by then get a note instead of state.
READ_BUDGET_S = 5.0
#: The ClientID of the panel's reads, so the upstream's own log can tell them apart.
CLIENT_ID = 4099
_NOT_IMPLEMENTED = 0x400


class ReadError(Exception):
    """One request to the upstream gave no usable answer."""


class _AscomError(Exception):
    """The upstream answered with an ASCOM error."""

    def __init__(self, number: int, message: str) -> None:
        super().__init__(f"0x{number:X} {message}".strip())
        self.number = number


class UpstreamDevices:
    """The upstream's device list with live state, for ``Proxy.device_views``; :meth:`close`
    stops its reader thread."""

    def __init__(self, host: str, port: int, timeout_s: float = READ_TIMEOUT_S) -> None:
        self.host, self.port = host, port
        self.timeout_s = min(timeout_s, READ_TIMEOUT_S)
        self._cond = threading.Condition()
        self._views: list[dict[str, Any]] | None = None  # None: not read yet
        self._read_at = float("-inf")
        self._wanted = False
        self._closed = False
        self._thread: threading.Thread | None = None
        # the reader thread's own
        self._conn: http.client.HTTPConnection | None = None
        self._tx = 0
        self._known: list[dict[str, Any]] = []  # the last list the upstream gave

    def views(self) -> list[dict[str, Any]]:
        """Every upstream device: device_type, device_number, name, unique_id, state, settable
        (always empty), note (why some or all state is missing, or None)."""
        with self._cond:
            if not self._closed and not self._wanted and time.monotonic() - self._read_at >= MIN_INTERVAL_S:
                self._wanted = True
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name=f"upstream-devices-{self.port}", daemon=True)
                    self._thread.start()
                self._cond.notify_all()
            if self._views is None:  # the first read: wait for it, as long as a read may take
                self._cond.wait_for(lambda: self._views is not None or self._closed, READ_BUDGET_S + 2 * READ_TIMEOUT_S)
            return [{**v, "state": dict(v["state"])} for v in self._views or []]

    def close(self) -> None:
        """Stop the reader; a read under way is cut (its socket shut down)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        conn = self._conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if thread is not None:
            thread.join(READ_TIMEOUT_S + 1)
        self._disconnect()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._wanted or self._closed):
                    self._cond.wait(1.0)
                if self._closed:
                    return
            views = self._read()
            with self._cond:
                self._views, self._read_at, self._wanted = views, time.monotonic(), False
                self._cond.notify_all()

    # -- reading -------------------------------------------------------------------------------------

    def _read(self) -> list[dict[str, Any]]:
        try:
            listed = self._value("/management/v1/configureddevices")
            if not isinstance(listed, list):
                raise ReadError("configureddevices is not a list")
            self._known = sorted(
                ({"device_type": str(d["DeviceType"]).lower(), "device_number": int(d["DeviceNumber"]),
                  "name": str(d.get("DeviceName", "")), "unique_id": str(d.get("UniqueID", ""))} for d in listed),
                key=lambda d: (d["device_type"], d["device_number"]),
            )
        except (ReadError, KeyError, TypeError, ValueError) as exc:
            note = f"upstream {self.host}:{self.port} gave no device list: {exc}"
            return [{**d, "state": {}, "settable": {}, "note": note} for d in self._known]
        deadline = time.monotonic() + READ_BUDGET_S
        out = []
        for dev in self._known:
            if time.monotonic() > deadline:
                out.append({**dev, "state": {}, "settable": {}, "note": f"state not read: the upstream took over {READ_BUDGET_S:g} s"})
                continue
            state, note = self._state(dev["device_type"], dev["device_number"], deadline)
            out.append({**dev, "state": state, "settable": {}, "note": note})
        return out

    def _state(self, device_type: str, number: int, deadline: float) -> tuple[dict[str, Any], str | None]:
        state: dict[str, Any] = {}
        problems = []
        for member in ("Connected", *STATE_MEMBERS.get(device_type, ())):
            if time.monotonic() > deadline:
                problems.append(f"the rest not read: the upstream took over {READ_BUDGET_S:g} s")
                break
            try:
                state[member] = self._value(f"/api/v1/{device_type}/{number}/{member.lower()}")
            except _AscomError as exc:
                if exc.number != _NOT_IMPLEMENTED:
                    problems.append(f"{member}: {exc}")
            except ReadError as exc:
                problems.append(f"{member}: {exc}")
                break
            if member == "Connected" and state[member] is False:
                problems.append("not connected: its state is read once a client connects it")
                break
        return state, "; ".join(problems) or None

    def _value(self, path: str) -> Any:
        """The Value of one GET to the upstream; ReadError or _AscomError when there is none."""
        if self._closed:
            raise ReadError("the proxy is stopping")
        self._tx = self._tx % 4_000_000_000 + 1
        uri = f"{path}?ClientID={CLIENT_ID}&ClientTransactionID={self._tx}"
        for attempt in (1, 2):  # a kept-alive connection the upstream closed is retried once, fresh
            fresh = self._conn is None
            try:
                if self._conn is None:
                    self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
                self._conn.request("GET", uri, headers={"Accept": "application/json"})
                resp = self._conn.getresponse()
                body = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                self._disconnect()
                if fresh or attempt == 2:
                    raise ReadError(f"{type(exc).__name__}: {exc}") from None
                continue
            if resp.will_close:
                self._disconnect()
            break
        if resp.status != 200:
            raise ReadError(f"HTTP {resp.status}: {body[:120].decode('utf-8', 'replace').strip()}")
        try:
            doc = json.loads(body)
        except ValueError:
            raise ReadError("the answer is not JSON") from None
        if not isinstance(doc, dict):
            raise ReadError("the answer is not a JSON object")
        number = doc.get("ErrorNumber") or 0
        if number:
            raise _AscomError(int(number), str(doc.get("ErrorMessage") or ""))
        return doc.get("Value")

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
