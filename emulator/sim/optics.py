"""What the camera's optical train is doing at one instant, read from the camera's peers.

The camera renders the sky through the devices in front of it: the mount's pointing, the rotator's
sky angle, the focuser against its best focus (shifted by the filter's focus offset), the filter's
throughput, the cover and the calibrator lamp, the dome's shutter and opening, and the weather's
seeing and cloud. :func:`read_train` reads them all once, through the peers' own members (the
lowest-numbered device of each type), into a frozen :class:`TrainState`; the render then works on
that snapshot without holding any other device. A peer that is absent, or leaves a member out,
stands for the ideal part (open cover, no filter, perfect focus, clear sky).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterator

from emulator.sim import sky
from emulator.sim.devices.base import Device, Site
from emulator.sim.errors import AscomError

#: Cover and calibrator states of the CoverCalibrator interface.
COVER_NOT_PRESENT, COVER_OPEN = 0, 3
CALIBRATOR_READY = 3
#: How long to wait for a peer that is busy in another request before reading it unlocked (s).
PEER_LOCK_WAIT_S = 0.2


@dataclass(frozen=True)
class TrainState:
    """The optical train at one instant."""

    utc: datetime
    ra_hours: float
    dec_deg: float
    alt_deg: float
    az_deg: float
    focal_length_m: float
    aperture_m: float
    aperture_area_m2: float
    rotator_deg: float  # sky position angle of the sensor's +y axis, from north through east
    focus_error_steps: float  # focuser position minus the best focus for this filter and temperature
    step_um: float
    throughput: float  # of the filter in the beam
    cover_open: bool
    dome_clear: bool  # shutter open and the opening in front of the telescope
    lamp: float  # calibrator brightness as a fraction of its maximum, 0 when off or not ready
    seeing_arcsec: float
    cloud_cover_pct: float
    sky: sky.SkyState

    @property
    def sees_sky(self) -> bool:
        """Light from the sky reaches the sensor: cover and dome open, pointing above the horizon."""
        return self.cover_open and self.dome_clear and self.alt_deg > 0.0


def _read(default: Any, member: Callable[[], Any]) -> Any:
    """A peer's member, or ``default`` when the peer leaves that member out (NotImplemented etc.)."""
    try:
        return member()
    except AscomError:
        return default


@contextmanager
def _holding(device: Device | None) -> Iterator[Device | None]:
    """The peer's lock for a consistent read; after a short wait, read without it (never block the camera)."""
    if device is None:
        yield None
        return
    got = device.lock.acquire(timeout=PEER_LOCK_WAIT_S)
    try:
        yield device
    finally:
        if got:
            device.lock.release()


def read_train(site: Site, utc: datetime, night_sky_mu: float) -> TrainState | None:
    """The optical train now (None without a telescope: nothing to point)."""
    with _holding(site.first("telescope")) as tel:
        if tel is None:
            return None
        t: Any = tel
        ra, dec = t.rightascension(), t.declination()
        alt, az = t.altitude(), t.azimuth()
        lat, lon = t.get_sitelatitude(), t.get_sitelongitude()
        focal = t.focallength()
        aperture = t.aperturediameter()
        area = t.aperturearea()
    with _holding(site.first("rotator")) as rot:
        rotator_deg = float(_read(0.0, rot.position)) if rot is not None else 0.0
    throughput, offset = 1.0, 0
    with _holding(site.first("filterwheel")) as fw:
        if fw is not None:
            f: Any = fw
            slot = _read(-1, f.get_position)
            if slot >= 0:  # -1: the wheel is turning, the beam goes through a slot edge
                throughput = f.throughput(slot)
                offsets = _read([], f.focusoffsets)
                offset = offsets[slot] if slot < len(offsets) else 0
            else:
                throughput = 0.0
    focus_error, step_um = 0.0, 4.0
    with _holding(site.first("focuser")) as foc:
        if foc is not None:
            fo: Any = foc
            focus_error = fo.true_position() - (fo.best_focus() + offset)
            step_um = fo.config.step_size_um or step_um
    cover_open, lamp = True, 0.0
    with _holding(site.first("covercalibrator")) as cc:
        if cc is not None:
            c: Any = cc
            cover = _read(COVER_NOT_PRESENT, c.coverstate)
            cover_open = cover in (COVER_NOT_PRESENT, COVER_OPEN)
            if _read(0, c.calibratorstate) == CALIBRATOR_READY and cover != COVER_OPEN:
                lamp = _read(0, c.brightness) / max(1, _read(1, c.maxbrightness))
    dome_clear = True
    with _holding(site.first("dome")) as dm:
        if dm is not None:
            dome_clear = bool(dm.opening_faces(az, alt))  # type: ignore[attr-defined]
    seeing, cloud = 2.0, 0.0
    with _holding(site.first("observingconditions")) as oc:
        if oc is not None:
            o: Any = oc
            seeing = float(_read(seeing, o.starfwhm))
            cloud = float(_read(cloud, o.cloudcover))
    state = sky.sky_state(utc, lat, lon, site.observatory.sunlight, night_sky_mu)
    return TrainState(
        utc=utc, ra_hours=ra, dec_deg=dec, alt_deg=alt, az_deg=az, focal_length_m=focal, aperture_m=aperture,
        aperture_area_m2=area, rotator_deg=rotator_deg, focus_error_steps=focus_error, step_um=step_um,
        throughput=throughput, cover_open=cover_open, dome_clear=dome_clear, lamp=lamp, seeing_arcsec=seeing,
        cloud_cover_pct=cloud, sky=state,
    )
