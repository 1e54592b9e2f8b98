"""Telescope (ITelescopeV4): a mount whose pointing moves on the simulation clock.

The mount's pointing is held in one of two frames and drifts linearly in it between events:

- ``"ra"`` while tracking: right ascension is what stays put (at the sidereal rate exactly, or
  drifting slowly at lunar/solar/King rate or with RightAscensionRate/DeclinationRate offsets);
- ``"ha"`` while not tracking: the mount stands still against the earth, so the hour angle stays
  and right ascension runs away with sidereal time.

Every command that changes a rate "rebases": the position now becomes the new start of the
drift. Slews, parking, homing and pier flips are a straight move in one of the two frames from
the start to the end position at ``slew_rate_deg_s`` (both axes at once), then
``SlewSettleTime`` seconds during which Slewing stays true. Pulse guides and MoveAxis are extra
rates added for their duration. Nothing runs in the background: every read computes the state
from the clock.

Asynchronous methods return at once (clients poll Slewing / AtPark / AtHome /
IsPulseGuiding). The deprecated synchronous SlewToCoordinates / SlewToTarget / SlewToAltAz do
what a real driver does: they return when the slew has finished. They wait with the device
lock released (so other clients keep being answered and can AbortSlew), and give up with a
DriverException after ``sync_wait_limit_s`` of wall time (a stuck mount), leaving the motion
running. Park and FindHome are asynchronous, as ITelescopeV4 requires.

Like a real German mount it has limits. SideOfPier follows the hour angle: a tube that tracks
west of the meridian is on the east side of the pier (pierEast, "looking west", the normal
pointing state), one east of it on the west side (pierWest, through the pole). A slew keeps the
side it is on while the target is within ``meridian_limit_deg`` past the meridian of that side,
and otherwise flips (SideOfPier changes; the tube swings through the pole, so the slew lasts at
least as long as a 180 degree move). DestinationSideOfPier predicts exactly that. Tracking stops
(Tracking false, the position stays where the limit was met) when it carries the tube more than
``meridian_limit_deg`` past the meridian, or the line of sight below ``horizon_limit_deg`` (if
set); the control API shows which limit was met (``LimitHit``). Limits are found lazily too: the first
crossing since the drift began, found by stepping and bisection, never by a background thread.

For rehearsals the control API can set ``Stuck`` (slews start but never progress or finish
until AbortSlew or Stuck=false) and ``Tracking`` (regardless of CanSetTracking).
"""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from enum import IntEnum
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from emulator.sim.clock import SimClock
from emulator.sim.devices.base import Device, DeviceConfig, get, put
from emulator.sim.errors import (
    AscomError,
    InvalidOperation,
    InvalidValue,
    NotImplementedErr,
    Parked,
    ValueNotSet,
    check_range,
)

# -- astronomy ----------------------------------------------------------------------------------

#: Tracking rates in arc seconds of hour angle per SI second (ASCOM DriveRates).
SIDEREAL_ARCSEC_S = 15.041067
DRIVE_RATE_ARCSEC_S = {0: SIDEREAL_ARCSEC_S, 1: 14.685, 2: 15.0, 3: 15.0369}
DRIVE_RATE_NAMES = {"sidereal": 0, "lunar": 1, "solar": 2, "king": 3}
#: Sidereal seconds per SI second (RightAscensionRate is in RA seconds per sidereal second).
SIDEREAL_PER_SI = 1.00273790935
_J2000_UNIX = 946728000.0  # 2000-01-01T12:00:00Z
#: Step (simulated s) of the search for the first limit crossing: far shorter than a crossing takes.
_LIMIT_STEP_S = 300.0
#: How far into a drift the search looks: a sidereal day and a margin for rate offsets.
_LIMIT_HORIZON_S = 90000.0


def wrap24(hours: float) -> float:
    """Hours into [0, 24)."""
    value = hours % 24.0
    return 0.0 if value >= 24.0 else value


def wrap12(hours: float) -> float:
    """Hours into [-12, 12): the shortest signed way round."""
    return (hours + 12.0) % 24.0 - 12.0


def gmst_hours(utc: datetime) -> float:
    """Greenwich mean sidereal time (hours) of a UTC instant; good to well under a second."""
    return gmst_hours_unix(utc.timestamp())


def gmst_hours_unix(unix_s: float) -> float:
    """:func:`gmst_hours` of a Unix time (seconds): no datetime arithmetic, for the hot paths."""
    return wrap24(18.697374558 + 24.06570982441908 * ((unix_s - _J2000_UNIX) / 86400.0))


def hadec_to_altaz(ha_hours: float, dec_deg: float, lat_deg: float) -> tuple[float, float]:
    """Hour angle/declination to (altitude, azimuth) in degrees; azimuth from north through east."""
    h, d, p = math.radians(ha_hours * 15.0), math.radians(dec_deg), math.radians(lat_deg)
    sin_alt = math.sin(d) * math.sin(p) + math.cos(d) * math.cos(p) * math.cos(h)
    alt = math.degrees(math.asin(max(-1.0, min(1.0, sin_alt))))
    y = -math.cos(d) * math.sin(h)
    x = math.sin(d) * math.cos(p) - math.cos(d) * math.sin(p) * math.cos(h)
    az = math.degrees(math.atan2(y, x)) % 360.0 if (abs(x) > 1e-12 or abs(y) > 1e-12) else 0.0
    return alt, 0.0 if az >= 360.0 else az


def altaz_to_hadec(alt_deg: float, az_deg: float, lat_deg: float) -> tuple[float, float]:
    """(altitude, azimuth) in degrees to (hour angle in hours, declination in degrees)."""
    a, z, p = math.radians(alt_deg), math.radians(az_deg), math.radians(lat_deg)
    sin_dec = math.sin(a) * math.sin(p) + math.cos(a) * math.cos(p) * math.cos(z)
    dec = math.degrees(math.asin(max(-1.0, min(1.0, sin_dec))))
    y = -math.sin(z) * math.cos(a)
    x = math.sin(a) * math.cos(p) - math.cos(a) * math.sin(p) * math.cos(z)
    ha = math.degrees(math.atan2(y, x)) / 15.0 if (abs(x) > 1e-12 or abs(y) > 1e-12) else 0.0
    return wrap12(ha), dec


# -- enums of the interface ---------------------------------------------------------------------


class AlignmentModes(IntEnum):
    algAltAz = 0
    algPolar = 1
    algGermanPolar = 2


class PierSide(IntEnum):
    pierUnknown = -1
    pierEast = 0
    pierWest = 1


class GuideDirection(IntEnum):
    North = 0
    South = 1
    East = 2
    West = 3


_ALIGNMENT = {"altaz": AlignmentModes.algAltAz, "polar": AlignmentModes.algPolar, "german": AlignmentModes.algGermanPolar}
_EQUATORIAL = {"other": 0, "topocentric": 1, "j2000": 2, "j2050": 3, "b1950": 4}
_UTC_RE = re.compile(
    r"\s*(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?\s*(Z|z|[+-]\d{2}:?\d{2})?\s*\Z"
)


class AxisRate(BaseModel):
    """One range of MoveAxis rates (deg/s), as AxisRates reports it."""

    model_config = ConfigDict(extra="forbid")
    minimum: float = Field(ge=0, le=90)
    maximum: float = Field(ge=0, le=90)

    @model_validator(mode="after")
    def _ordered(self) -> "AxisRate":
        if self.maximum < self.minimum:
            raise ValueError(f"maximum {self.maximum} is below minimum {self.minimum}")
        return self


class TelescopeConfig(DeviceConfig):
    type: Literal["telescope"] = "telescope"
    alignment_mode: Literal["german", "polar", "altaz"] = Field("german", description="Mount geometry (AlignmentMode)")
    equatorial_system: Literal["other", "topocentric", "j2000", "j2050", "b1950"] = Field(
        "topocentric", description="EquatorialSystem of the coordinates the mount reports"
    )
    site_latitude: float = Field(51.48, ge=-90, le=90, description="SiteLatitude, degrees north")
    site_longitude: float = Field(0.0, ge=-180, le=180, description="SiteLongitude, degrees east")
    site_elevation: float = Field(50.0, ge=-300, le=10000, description="SiteElevation, metres")
    aperture_diameter_m: float = Field(0.2, gt=0, le=50, description="ApertureDiameter, metres")
    aperture_area_m2: float | None = Field(
        None, gt=0, le=2000, description="ApertureArea, m^2 (default: the disc less a 35% central obstruction)"
    )
    focal_length_m: float = Field(1.0, gt=0, le=500, description="FocalLength, metres")
    slew_rate_deg_s: float = Field(3.0, gt=0, le=90, description="Slew speed of both axes (a 180 deg slew at 3 deg/s takes 60 s)")
    settle_time_s: int = Field(0, ge=0, le=3600, description="Initial SlewSettleTime: seconds Slewing stays true after a slew")
    park_altitude: float | None = Field(None, ge=-90, le=90, description="Park altitude, degrees (default: the celestial pole)")
    park_azimuth: float | None = Field(None, ge=0, lt=360, description="Park azimuth, degrees (default: towards the pole)")
    home_altitude: float | None = Field(None, ge=-90, le=90, description="Home altitude, degrees (default: the celestial pole)")
    home_azimuth: float | None = Field(None, ge=0, lt=360, description="Home azimuth, degrees (default: towards the pole)")
    start_parked: bool = Field(False, description="Start at the park position with AtPark true")
    tracking: bool = Field(False, description="Tracking at start (ignored when starting parked)")
    tracking_rates: list[Literal["sidereal", "lunar", "solar", "king"]] = Field(
        default_factory=lambda: ["sidereal", "lunar", "solar", "king"], min_length=1, description="TrackingRates offered"
    )
    does_refraction: bool = Field(False, description="Initial DoesRefraction (a flag only: no refraction is modelled)")
    guide_rate_deg_s: float = Field(
        0.5 * SIDEREAL_ARCSEC_S / 3600.0, gt=0, le=1, description="Initial guide rates of both axes, deg/s (default half sidereal)"
    )
    max_move_rate_deg_s: float = Field(4.0, gt=0, le=90, description="Maximum MoveAxis rate (AxisRates), deg/s")
    can_slew: bool = Field(True, description="CanSlew (synchronous equatorial slews)")
    can_slew_async: bool = Field(True, description="CanSlewAsync")
    can_slew_altaz: bool = Field(True, description="CanSlewAltAz (synchronous alt-az slews)")
    can_slew_altaz_async: bool = Field(True, description="CanSlewAltAzAsync")
    can_sync: bool = Field(True, description="CanSync (SyncToCoordinates/SyncToTarget)")
    can_sync_altaz: bool = Field(True, description="CanSyncAltAz")
    can_park: bool = Field(True, description="CanPark")
    can_unpark: bool = Field(True, description="CanUnpark")
    can_set_park: bool = Field(True, description="CanSetPark")
    can_find_home: bool = Field(True, description="CanFindHome")
    can_pulse_guide: bool = Field(True, description="CanPulseGuide")
    can_set_guide_rates: bool = Field(True, description="CanSetGuideRates")
    can_set_tracking: bool = Field(True, description="CanSetTracking")
    can_set_rates: bool = Field(True, description="CanSetRightAscensionRate and CanSetDeclinationRate")
    can_set_pier_side: bool = Field(True, description="CanSetPierSide (German mounts only)")
    can_move_axis: bool = Field(True, description="CanMoveAxis for the primary and secondary axes")
    axis_rates: list[list[AxisRate]] | None = Field(
        None, max_length=3,
        description="AxisRates per axis (primary, secondary, tertiary), each a list of {minimum, maximum} deg/s; "
        "an axis with none cannot MoveAxis (default: 0..max_move_rate_deg_s on the primary and secondary axes)",
    )
    synchronous_slews: bool = Field(
        True, description="False: SlewToCoordinates, SlewToTarget and SlewToAltAz answer NotImplemented although CanSlew/CanSlewAltAz are true (as OmniSim does)"
    )
    sync_wait_limit_s: float = Field(
        120.0, gt=0, le=3600, description="Wall seconds a synchronous slew waits before giving up with a DriverException"
    )
    meridian_limit_deg: float = Field(
        5.0, ge=0, le=30,
        description="German mounts: degrees past the meridian the tube may track (tracking then stops) and a slew may "
        "go without a flip",
    )
    horizon_limit_deg: float | None = Field(
        None, ge=-90, le=89, description="Tracking stops when the line of sight sinks below this altitude, degrees (unset: never)"
    )


@dataclass(frozen=True)
class _Drift:
    """Pointing at sim time ``t0`` in ``frame`` ('ra' or 'ha' hours, dec degrees) and its rates."""

    frame: str
    c0: float
    d0: float
    t0: float
    c_rate: float = 0.0  # hours per second, in the frame
    d_rate: float = 0.0  # degrees per second


@dataclass(frozen=True)
class _Slew:
    """A straight move in ``frame`` from (c_start, d_start) to (c_end, d_end), then a settle."""

    kind: str  # "slew", "park", "home", "flip"
    frame: str
    c_start: float
    d_start: float
    c_end: float
    d_end: float
    t_start: float
    motion_s: float
    settle_s: float
    pier_after: PierSide
    stuck: bool = False

    @property
    def t_motion_end(self) -> float:
        return self.t_start + self.motion_s

    @property
    def t_done(self) -> float:
        return self.t_start + self.motion_s + self.settle_s


@dataclass(frozen=True)
class Pointing:
    """Where the mount points at one instant, for the devices that follow it (dome, camera)."""

    t: float  # simulated time of the snapshot
    right_ascension: float  # hours
    declination: float  # degrees
    hour_angle: float  # hours, -12..12
    altitude: float  # degrees
    azimuth: float  # degrees, north through east
    side_of_pier: PierSide
    latitude: float  # degrees north
    tracking: bool
    slewing: bool
    at_park: bool
    parking: bool  # a Park is moving the mount to its park position


@dataclass(frozen=True)
class _Pulse:
    """A pulse guide on one axis: RA hours/s and Dec deg/s added from start to end."""

    start: float
    end: float
    ra_rate: float
    dec_rate: float

    def offset(self, t: float) -> tuple[float, float]:
        dt = max(0.0, min(t, self.end) - self.start)
        return self.ra_rate * dt, self.dec_rate * dt


class Telescope(Device):
    """An equatorial (or alt-az) mount: see the module docstring for the motion model."""

    device_type = "telescope"
    type_name = "Telescope"
    interface_version = 4
    config_class = TelescopeConfig
    state_names = (
        "Altitude",
        "AtHome",
        "AtPark",
        "Azimuth",
        "Declination",
        "IsPulseGuiding",
        "RightAscension",
        "SideOfPier",
        "SiderealTime",
        "Slewing",
        "Tracking",
        "UTCDate",
    )

    def __init__(self, config: TelescopeConfig, clock: SimClock, seed: int = 0) -> None:
        super().__init__(config, clock, seed)
        self.config: TelescopeConfig = config
        # UTC at any sim time is the clock's (exact arithmetic, no second clock read), plus what
        # writing UTCDate set; read from the clock each time, so a rehearsal's start_timeline moves it too
        self._utc_offset = timedelta(0)
        self._offset_s = 0.0  # the same, in seconds
        now = clock.now()
        self._lat = config.site_latitude
        self._lon = config.site_longitude
        self._elev = config.site_elevation
        self._settle = config.settle_time_s
        self._refraction = config.does_refraction
        self._tracking = config.tracking and not config.start_parked
        self._drive = DRIVE_RATE_NAMES[config.tracking_rates[0]] if "sidereal" not in config.tracking_rates else 0
        self._ra_rate = 0.0  # RightAscensionRate: RA seconds per sidereal second
        self._dec_rate = 0.0  # DeclinationRate: arcsec per SI second
        self._guide_ra = config.guide_rate_deg_s
        self._guide_dec = config.guide_rate_deg_s
        self._move = {0: 0.0, 1: 0.0}  # MoveAxis rates, deg/s
        self._pulses: dict[str, _Pulse] = {}
        self._target_ra: float | None = None
        self._target_dec: float | None = None
        self._stuck = False
        self._slew: _Slew | None = None
        self._slew_seq = 0  # counts slews started, so a waiter can tell "its" slew from the next one
        self._slew_done = threading.Condition(self.lock)
        pole_alt = abs(self._lat)
        pole_az = 0.0 if self._lat >= 0 else 180.0
        self._park_altaz = (
            config.park_altitude if config.park_altitude is not None else pole_alt,
            config.park_azimuth if config.park_azimuth is not None else pole_az,
        )
        self._home_altaz = (
            config.home_altitude if config.home_altitude is not None else pole_alt,
            config.home_azimuth if config.home_azimuth is not None else pole_az,
        )
        ha, dec = altaz_to_hadec(*self._park_altaz, self._lat)
        self._drift = _Drift("ha", ha, dec, now)
        self._parked = config.start_parked
        self._at_home = False
        self._pier = self._pier_for_ha(ha)
        self._limits_from = now  # limits are checked from here on (and from each new drift's start)
        self._limit_hit: str | None = None  # the limit that last stopped tracking, for the control API
        if self._tracking:
            self._rebase(now)

    # -- time and frames -------------------------------------------------------------------------

    def _utc_at(self, t: float) -> datetime:
        return self.clock.utc_at(t) + self._utc_offset

    def _lst_at(self, t: float) -> float:
        return wrap24(gmst_hours_unix(self.clock.unix0 + self._offset_s + t) + self._lon / 15.0)

    def _to_frame(self, frame: str, c: float, from_frame: str, t: float) -> float:
        """Convert an RA or HA (hours) between frames at sim time ``t`` (RA = LST - HA)."""
        if frame == from_frame:
            return c
        return wrap24(self._lst_at(t) - c) if frame == "ra" else wrap12(self._lst_at(t) - c)

    def _drift_rates(self, frame: str) -> tuple[float, float]:
        """The frame's (hours/s, deg/s) rates from tracking, rate offsets and MoveAxis."""
        move_ra = self._move[0] / 15.0  # positive primary rate: RA increases
        move_dec = self._move[1]
        if frame == "ra":
            track = DRIVE_RATE_ARCSEC_S[self._drive]
            c_rate = (SIDEREAL_ARCSEC_S - track) / 54000.0 + self._ra_rate * SIDEREAL_PER_SI / 3600.0 + move_ra
            return c_rate, self._dec_rate / 3600.0 + move_dec
        return -move_ra, move_dec

    # -- the state, computed from the clock ------------------------------------------------------

    def _update(self) -> float:
        """Settle a finished slew and expired pulses; returns the sim time used."""
        now = self.clock.now()
        slew = self._slew
        if slew is not None and not slew.stuck and now >= slew.t_done:
            self._finish_slew(slew)
        if self._slew is None and any(now >= pulse.end for pulse in self._pulses.values()):
            self._rebase(now)  # fold finished pulses into the drift
        self._check_limits(now)
        return now

    # -- limits ----------------------------------------------------------------------------------

    def _limit_at(self, t: float) -> str | None:
        """The limit the drifting (not slewing) mount is beyond at ``t``: 'meridian', 'horizon' or None."""
        ha, dec = self._hadec(t)
        if self._german and self._past_meridian(self._pier, ha):
            return "meridian"
        horizon = self.config.horizon_limit_deg
        if horizon is not None and hadec_to_altaz(ha, dec, self._lat)[0] < horizon:
            return "horizon"
        return None

    def _past_meridian(self, side: PierSide, ha: float) -> bool:
        """True when tracking has carried a tube on ``side`` past its meridian limit.

        Tracking moves the hour angle forward: a pierWest tube towards the upper meridian (HA 0),
        a pierEast tube towards the lower one (HA 12). Past means beyond the limit and within the
        quarter turn after it, the part of the sky a tracking tube enters when it crosses the limit
        (a sync or a forced flip may put the tube elsewhere; it is not stopped for that).
        """
        limit = self.config.meridian_limit_deg / 15.0
        past = wrap12(ha) if side == PierSide.pierWest else wrap12(ha - 12.0)
        return limit < past <= limit + 6.0

    def _check_limits(self, now: float) -> None:
        """Stop tracking where it first met a limit since the drift began (lazily, like all motion)."""
        if not self._tracking or self._slew is not None:
            return
        if not self._german and self.config.horizon_limit_deg is None:
            return  # no limit this mount can meet
        start = max(self._limits_from, self._drift.t0)
        # the sky repeats every sidereal day: a drift that met no limit in its first one meets none
        now_checked = min(now, self._drift.t0 + _LIMIT_HORIZON_S)
        self._limits_from = max(self._limits_from, now)
        if now_checked < start:
            return
        now = now_checked
        # from the start of a new drift (a sync may have moved the mount) it has not been checked yet
        hit, reason = None, self._limit_at(start) if start == self._drift.t0 else None
        if reason is not None:
            hit = start
        else:
            t = start
            while t < now:  # beyond a limit a tracking tube stays far longer than a step: none is stepped over
                t_next = min(t + _LIMIT_STEP_S, now)
                reason = self._limit_at(t_next)
                if reason is not None:
                    lo, hi = t, t_next
                    while hi - lo > 1e-3:
                        mid = 0.5 * (lo + hi)
                        lo, hi = (lo, mid) if self._limit_at(mid) is not None else (mid, hi)
                    hit, reason = hi, self._limit_at(hi)
                    break
                t = t_next
        if hit is None:
            return
        frame, c, d = self._raw_position(hit)
        self._tracking = False
        self._move = {0: 0.0, 1: 0.0}
        self._pulses.clear()
        self._drift = _Drift("ha", self._to_frame("ha", c, frame, hit), d, hit)
        self._limit_hit = reason

    def _finish_slew(self, slew: _Slew) -> None:
        t_end = slew.t_motion_end
        frame = "ra" if self._tracking else "ha"
        c_end = self._to_frame(frame, slew.c_end, slew.frame, t_end)
        self._slew = None
        self._pulses.clear()
        rates = self._drift_rates(frame)
        self._drift = _Drift(frame, c_end, slew.d_end, t_end, *rates)
        self._pier = slew.pier_after
        if slew.kind == "park":
            self._parked = True
        elif slew.kind == "home":
            self._at_home = True
        self._wake_waiters()

    def _raw_position(self, t: float) -> tuple[str, float, float]:
        """(frame, coordinate, declination) at ``t`` without settling anything."""
        slew = self._slew
        if slew is not None:
            if slew.stuck or slew.motion_s <= 0:
                frac = 0.0 if slew.stuck else 1.0
            else:
                frac = max(0.0, min(1.0, (t - slew.t_start) / slew.motion_s))
            c = slew.c_start + wrap12(slew.c_end - slew.c_start) * frac
            d = slew.d_start + (slew.d_end - slew.d_start) * frac
            return slew.frame, (wrap24(c) if slew.frame == "ra" else wrap12(c)), d
        drift = self._drift
        dt = t - drift.t0
        c = drift.c0 + drift.c_rate * dt
        d = drift.d0 + drift.d_rate * dt
        for pulse in self._pulses.values():
            dra, ddec = pulse.offset(t)
            c += dra if drift.frame == "ra" else -dra
            d += ddec
        d = max(-90.0, min(90.0, d))
        return drift.frame, (wrap24(c) if drift.frame == "ra" else wrap12(c)), d

    def _radec(self, t: float) -> tuple[float, float]:
        frame, c, d = self._raw_position(t)
        return self._to_frame("ra", c, frame, t), d

    def _hadec(self, t: float) -> tuple[float, float]:
        frame, c, d = self._raw_position(t)
        return self._to_frame("ha", c, frame, t), d

    def _rebase(self, t: float) -> None:
        """Make the position at ``t`` the start of a new drift with the current rates."""
        if self._slew is not None:
            return  # a slew owns the position; the drift is rebuilt when it finishes
        frame_now, c, d = self._raw_position(t)
        frame = "ra" if self._tracking else "ha"
        c = self._to_frame(frame, c, frame_now, t)
        self._pulses = {k: replace(p, start=t) for k, p in self._pulses.items() if p.end > t}
        self._drift = _Drift(frame, c, d, t, *self._drift_rates(frame))

    def _is_slewing(self) -> bool:
        return self._slew is not None or any(rate != 0.0 for rate in self._move.values())

    def _pier_for_ha(self, ha_hours: float) -> PierSide:
        """Where a German mount puts the tube for this hour angle: west of the meridian -> pierEast."""
        return PierSide.pierEast if wrap12(ha_hours) >= 0.0 else PierSide.pierWest

    def _side_for(self, ha_hours: float) -> PierSide:
        """The side a German mount takes for a target at this hour angle, coming from its side now.

        It stays where it is while the target lies within the meridian limit past that side's
        meridian (no needless flip), and otherwise takes the side the hour angle calls for.
        """
        ha, limit = wrap12(ha_hours), self.config.meridian_limit_deg / 15.0
        if self._pier == PierSide.pierWest and ha <= limit and not self._past_meridian(PierSide.pierWest, ha):
            return PierSide.pierWest
        if self._pier == PierSide.pierEast and ha >= -limit:
            return PierSide.pierEast
        return self._pier_for_ha(ha)

    # -- starting and stopping motion ------------------------------------------------------------

    def _start_slew(self, kind: str, frame: str, c_end: float, d_end: float, pier_after: PierSide | None = None) -> None:
        now = self._update()
        frame_now, c, d = self._raw_position(now)
        c_start = self._to_frame(frame, c, frame_now, now)
        c_end = wrap24(c_end) if frame == "ra" else wrap12(c_end)
        degrees = max(abs(wrap12(c_end - c_start)) * 15.0, abs(d_end - d))
        if pier_after is None:
            ha_end = self._to_frame("ha", c_end, frame, now)
            pier_after = self._side_for(ha_end) if self._german else PierSide.pierUnknown
        if kind == "flip" or (self._german and pier_after != self._pier and pier_after != PierSide.pierUnknown):
            degrees = max(degrees, 180.0)  # a meridian flip swings the tube round through the pole
        self._move = {0: 0.0, 1: 0.0}
        self._pulses.clear()
        self._at_home = False
        self._limit_hit = None
        self._slew_seq += 1
        if kind != "park":
            self._parked = False
        self._slew = _Slew(
            kind, frame, c_start, d, c_end, d_end, now, degrees / self.config.slew_rate_deg_s,
            float(self._settle), pier_after, self._stuck,
        )
        self._wake_waiters()

    def _stop_motion(self) -> None:
        """AbortSlew: freeze where the mount is now; MoveAxis rates go to zero."""
        now = self._update()
        if self._slew is not None:
            frame, c, d = self._raw_position(now)
            self._slew = None
            self._drift = _Drift(frame, c, d, now)
            if self._german:
                self._pier = self._side_for(self._to_frame("ha", c, frame, now))
        self._move = {0: 0.0, 1: 0.0}
        self._rebase(now)
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        """Tell blocked synchronous slews to look again (the lock is re-entrant, so this is safe anywhere)."""
        with self._slew_done:
            self._slew_done.notify_all()

    def _wait_for_slew(self) -> None:
        """Block a synchronous slew until it is over, without holding the device lock."""
        deadline = time.monotonic() + self.config.sync_wait_limit_s
        seq = self._slew_seq
        while True:
            self._update()
            slew = self._slew
            if slew is None or self._slew_seq != seq:
                return  # finished, aborted, or replaced by another client's slew
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AscomError(
                    f"the slew did not finish within {self.config.sync_wait_limit_s:g} s "
                    "(the mount is still slewing; poll Slewing or call AbortSlew)"
                )
            until_done = self.clock.to_wall(max(0.0, slew.t_done - self.clock.now())) if not slew.stuck else remaining
            # Condition.wait releases the device lock entirely while waiting, even if held twice.
            self._slew_done.wait(timeout=min(remaining, max(0.005, until_done + 0.002), 0.25))

    # -- guards ----------------------------------------------------------------------------------

    @property
    def _german(self) -> bool:
        return self.config.alignment_mode == "german"

    def _not_parked(self, what: str) -> None:
        self._update()
        if self._parked:
            raise Parked(f"{what} is not allowed while the mount is parked: call Unpark first")

    @staticmethod
    def _check_ra(name: str, ra: float) -> None:
        if not (0.0 <= ra < 24.0) or math.isnan(ra):
            raise InvalidValue(f"{name} '{ra}' is an invalid value. The valid range is: 0 to 24 (exclusive).")

    @staticmethod
    def _check_dec(name: str, dec: float) -> None:
        check_range(name, dec, -90.0, 90.0)

    @staticmethod
    def _check_altaz(altitude: float, azimuth: float) -> None:
        check_range("Altitude", altitude, -90.0, 90.0)
        if not (0.0 <= azimuth < 360.0):
            raise InvalidValue(f"Azimuth '{azimuth}' is an invalid value. The valid range is: 0 to 360 (exclusive).")

    # -- static properties -----------------------------------------------------------------------

    @get("alignmentmode")
    def alignmentmode(self) -> int:
        return int(_ALIGNMENT[self.config.alignment_mode])

    @get("aperturearea")
    def aperturearea(self) -> float:
        if self.config.aperture_area_m2 is not None:
            return self.config.aperture_area_m2
        radius = self.config.aperture_diameter_m / 2.0
        return math.pi * radius * radius * (1.0 - 0.35**2)

    @get("aperturediameter")
    def aperturediameter(self) -> float:
        return self.config.aperture_diameter_m

    @get("focallength")
    def focallength(self) -> float:
        return self.config.focal_length_m

    @get("equatorialsystem")
    def equatorialsystem(self) -> int:
        return _EQUATORIAL[self.config.equatorial_system]

    @get("doesrefraction")
    def get_doesrefraction(self) -> bool:
        return self._refraction

    @put("doesrefraction", DoesRefraction=bool)
    def put_doesrefraction(self, DoesRefraction: bool) -> None:
        self._refraction = DoesRefraction

    # -- capabilities ----------------------------------------------------------------------------

    @get("canfindhome")
    def canfindhome(self) -> bool:
        return self.config.can_find_home

    @get("canpark")
    def canpark(self) -> bool:
        return self.config.can_park

    @get("canunpark")
    def canunpark(self) -> bool:
        return self.config.can_unpark

    @get("cansetpark")
    def cansetpark(self) -> bool:
        return self.config.can_set_park

    @get("canpulseguide")
    def canpulseguide(self) -> bool:
        return self.config.can_pulse_guide

    @get("cansetguiderates")
    def cansetguiderates(self) -> bool:
        return self.config.can_set_guide_rates

    @get("cansetdeclinationrate")
    def cansetdeclinationrate(self) -> bool:
        return self.config.can_set_rates

    @get("cansetrightascensionrate")
    def cansetrightascensionrate(self) -> bool:
        return self.config.can_set_rates

    @get("cansetpierside")
    def cansetpierside(self) -> bool:
        return self.config.can_set_pier_side and self._german

    @get("cansettracking")
    def cansettracking(self) -> bool:
        return self.config.can_set_tracking

    @get("canslew")
    def canslew(self) -> bool:
        return self.config.can_slew

    @get("canslewasync")
    def canslewasync(self) -> bool:
        return self.config.can_slew_async

    @get("canslewaltaz")
    def canslewaltaz(self) -> bool:
        return self.config.can_slew_altaz

    @get("canslewaltazasync")
    def canslewaltazasync(self) -> bool:
        return self.config.can_slew_altaz_async

    @get("cansync")
    def cansync(self) -> bool:
        return self.config.can_sync

    @get("cansyncaltaz")
    def cansyncaltaz(self) -> bool:
        return self.config.can_sync_altaz

    @get("canmoveaxis", Axis=int)
    def canmoveaxis(self, Axis: int) -> bool:
        if Axis not in (0, 1, 2):
            raise InvalidValue(f"CanMoveAxis: Axis {Axis} is invalid; valid axes are 0 (primary), 1 (secondary), 2 (tertiary)")
        return self.config.can_move_axis and bool(self._axis_rates(Axis))

    def _axis_rates(self, axis: int) -> list[tuple[float, float]]:
        """(minimum, maximum) rate ranges of an axis, as configured."""
        c = self.config
        if c.axis_rates is None:
            return [(0.0, c.max_move_rate_deg_s)] if axis in (0, 1) else []
        return [(r.minimum, r.maximum) for r in c.axis_rates[axis]] if axis < len(c.axis_rates) else []

    @get("axisrates", Axis=int)
    def axisrates(self, Axis: int) -> list[dict[str, float]]:
        if not self.canmoveaxis(Axis):
            return []
        return [{"Maximum": hi, "Minimum": lo} for lo, hi in self._axis_rates(Axis)]

    # -- site and time ---------------------------------------------------------------------------

    @get("sitelatitude")
    def get_sitelatitude(self) -> float:
        return self._lat

    @put("sitelatitude", SiteLatitude=float)
    def put_sitelatitude(self, SiteLatitude: float) -> None:
        check_range("SiteLatitude", SiteLatitude, -90.0, 90.0)
        self._lat = SiteLatitude

    @get("sitelongitude")
    def get_sitelongitude(self) -> float:
        return self._lon

    @put("sitelongitude", SiteLongitude=float)
    def put_sitelongitude(self, SiteLongitude: float) -> None:
        check_range("SiteLongitude", SiteLongitude, -180.0, 180.0)
        self._lon = SiteLongitude

    @get("siteelevation")
    def get_siteelevation(self) -> float:
        return self._elev

    @put("siteelevation", SiteElevation=float)
    def put_siteelevation(self, SiteElevation: float) -> None:
        check_range("SiteElevation", SiteElevation, -300.0, 10000.0)
        self._elev = SiteElevation

    @get("siderealtime")
    def siderealtime(self) -> float:
        return self._lst_at(self._update())

    @get("utcdate")
    def get_utcdate(self) -> str:
        utc = self._utc_at(self._update())
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond * 10:07d}Z"

    @put("utcdate", UTCDate=str)
    def put_utcdate(self, UTCDate: str) -> None:
        """Set the mount's clock: sidereal time follows, so an untracked mount's RA jumps with it."""
        match = _UTC_RE.match(UTCDate)
        if match is None:
            raise InvalidValue(f"UTCDate '{UTCDate}' is not an ISO 8601 UTC date-time such as 2024-03-04T17:45:31.1234567Z")
        year, month, day, hour, minute, second, frac, zone = match.groups()
        try:
            utc = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=timezone.utc)
        except ValueError as exc:
            raise InvalidValue(f"UTCDate '{UTCDate}' is not a valid date-time: {exc}") from None
        if frac:
            utc += timedelta(seconds=float("0." + frac))
        if zone and zone not in ("Z", "z"):
            sign = 1 if zone[0] == "+" else -1
            digits = zone[1:].replace(":", "")
            utc -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        now = self._update()
        self._utc_offset = utc - self.clock.utc_at(now)
        self._offset_s = self._utc_offset.total_seconds()

    # -- where the mount points ------------------------------------------------------------------

    @get("rightascension")
    def rightascension(self) -> float:
        return self._radec(self._update())[0]

    @get("declination")
    def declination(self) -> float:
        return self._radec(self._update())[1]

    @get("altitude")
    def altitude(self) -> float:
        ha, dec = self._hadec(self._update())
        return hadec_to_altaz(ha, dec, self._lat)[0]

    @get("azimuth")
    def azimuth(self) -> float:
        ha, dec = self._hadec(self._update())
        return hadec_to_altaz(ha, dec, self._lat)[1]

    @get("sideofpier")
    def get_sideofpier(self) -> int:
        if not self._german:
            raise NotImplementedErr("SideOfPier is only reported by German equatorial mounts")
        self._update()
        return int(self._pier)

    @put("sideofpier", SideOfPier=int)
    def put_sideofpier(self, SideOfPier: int) -> None:
        """Force a meridian flip: a slew to the same coordinates on the other side of the pier."""
        self._require(self.config.can_set_pier_side and self._german, "Writing SideOfPier", "CanSetPierSide is false")
        if SideOfPier not in (PierSide.pierEast, PierSide.pierWest):
            raise InvalidValue(f"SideOfPier {SideOfPier} is invalid; valid values are 0 (pierEast) and 1 (pierWest)")
        self._not_parked("Writing SideOfPier")
        if self._slew is not None:
            raise InvalidOperation("SideOfPier cannot be changed while the mount is slewing")
        if SideOfPier == self._pier:
            return
        now = self._update()
        frame = "ra" if self._tracking else "ha"
        frame_now, c, d = self._raw_position(now)
        self._start_slew("flip", frame, self._to_frame(frame, c, frame_now, now), d, PierSide(SideOfPier))

    @get("destinationsideofpier", RightAscension=float, Declination=float)
    def destinationsideofpier(self, RightAscension: float, Declination: float) -> int:
        if not self._german:
            raise NotImplementedErr("DestinationSideOfPier is only implemented by German equatorial mounts")
        self._check_ra("RightAscension", RightAscension)
        self._check_dec("Declination", Declination)
        return int(self._side_for(self._lst_at(self._update()) - RightAscension))

    # -- targets ---------------------------------------------------------------------------------

    @get("targetrightascension")
    def get_targetrightascension(self) -> float:
        if self._target_ra is None:
            raise ValueNotSet("TargetRightAscension has not been set")
        return self._target_ra

    @put("targetrightascension", TargetRightAscension=float)
    def put_targetrightascension(self, TargetRightAscension: float) -> None:
        self._check_ra("TargetRightAscension", TargetRightAscension)
        self._target_ra = TargetRightAscension

    @get("targetdeclination")
    def get_targetdeclination(self) -> float:
        if self._target_dec is None:
            raise ValueNotSet("TargetDeclination has not been set")
        return self._target_dec

    @put("targetdeclination", TargetDeclination=float)
    def put_targetdeclination(self, TargetDeclination: float) -> None:
        self._check_dec("TargetDeclination", TargetDeclination)
        self._target_dec = TargetDeclination

    def _target(self, what: str) -> tuple[float, float]:
        if self._target_ra is None or self._target_dec is None:
            missing = "TargetRightAscension" if self._target_ra is None else "TargetDeclination"
            raise InvalidOperation(f"{what}: {missing} has not been set")
        return self._target_ra, self._target_dec

    # -- tracking and rates ----------------------------------------------------------------------

    @get("tracking")
    def get_tracking(self) -> bool:
        self._update()
        return self._tracking

    @put("tracking", Tracking=bool)
    def put_tracking(self, Tracking: bool) -> None:
        self._require(self.config.can_set_tracking, "Writing Tracking", "CanSetTracking is false")
        self._set_tracking(Tracking)

    def _set_tracking(self, value: bool, force: bool = False) -> None:
        now = self._update()
        if value and self._parked and not force:
            raise Parked("Tracking cannot be turned on while the mount is parked: call Unpark first")
        if value == self._tracking:
            return
        if value and not force and self._slew is None:
            self._limits_from = now
            limit = self._limit_at(now)
            if limit is not None:
                raise InvalidOperation(
                    f"Tracking cannot be turned on here: the mount is past its {limit} limit "
                    "(slew to a target within the limits, which flips the mount if need be)"
                )
        self._rebase(now)
        self._tracking = value
        if value:
            self._at_home = False
            self._limit_hit = None
        self._rebase(now)

    @get("trackingrate")
    def get_trackingrate(self) -> int:
        return self._drive

    @put("trackingrate", TrackingRate=int)
    def put_trackingrate(self, TrackingRate: int) -> None:
        offered = self.trackingrates()
        if TrackingRate not in offered:
            raise InvalidValue(f"TrackingRate {TrackingRate} is not supported; TrackingRates are {offered}")
        now = self._update()
        self._rebase(now)
        self._drive = TrackingRate
        self._rebase(now)

    @get("trackingrates")
    def trackingrates(self) -> list[int]:
        return [DRIVE_RATE_NAMES[name] for name in self.config.tracking_rates]

    @get("rightascensionrate")
    def get_rightascensionrate(self) -> float:
        return self._ra_rate

    @put("rightascensionrate", RightAscensionRate=float)
    def put_rightascensionrate(self, RightAscensionRate: float) -> None:
        self._require(self.config.can_set_rates, "Writing RightAscensionRate", "CanSetRightAscensionRate is false")
        self._set_offset_rate(ra=RightAscensionRate)

    @get("declinationrate")
    def get_declinationrate(self) -> float:
        return self._dec_rate

    @put("declinationrate", DeclinationRate=float)
    def put_declinationrate(self, DeclinationRate: float) -> None:
        self._require(self.config.can_set_rates, "Writing DeclinationRate", "CanSetDeclinationRate is false")
        self._set_offset_rate(dec=DeclinationRate)

    def _set_offset_rate(self, ra: float | None = None, dec: float | None = None) -> None:
        value = ra if ra is not None else dec
        name = "RightAscensionRate" if ra is not None else "DeclinationRate"
        if value is None or not math.isfinite(value) or abs(value) > 3600.0:
            raise InvalidValue(f"{name} '{value}' is an invalid value. The valid range is: -3600 to 3600.")
        if value != 0.0 and self._drive != 0:
            raise InvalidOperation(f"{name} offsets are only allowed while TrackingRate is sidereal (0)")
        now = self._update()
        self._rebase(now)
        if ra is not None:
            self._ra_rate = ra
        else:
            self._dec_rate = dec  # type: ignore[assignment]
        self._rebase(now)

    @get("guideraterightascension")
    def get_guideraterightascension(self) -> float:
        return self._guide_ra

    @put("guideraterightascension", GuideRateRightAscension=float)
    def put_guideraterightascension(self, GuideRateRightAscension: float) -> None:
        self._require(self.config.can_set_guide_rates, "Writing GuideRateRightAscension", "CanSetGuideRates is false")
        check_range("GuideRateRightAscension", GuideRateRightAscension, 0.0, 1.0)
        self._guide_ra = GuideRateRightAscension

    @get("guideratedeclination")
    def get_guideratedeclination(self) -> float:
        return self._guide_dec

    @put("guideratedeclination", GuideRateDeclination=float)
    def put_guideratedeclination(self, GuideRateDeclination: float) -> None:
        self._require(self.config.can_set_guide_rates, "Writing GuideRateDeclination", "CanSetGuideRates is false")
        check_range("GuideRateDeclination", GuideRateDeclination, 0.0, 1.0)
        self._guide_dec = GuideRateDeclination

    @get("slewsettletime")
    def get_slewsettletime(self) -> int:
        return self._settle

    @put("slewsettletime", SlewSettleTime=int)
    def put_slewsettletime(self, SlewSettleTime: int) -> None:
        check_range("SlewSettleTime", SlewSettleTime, 0, 3600)
        self._settle = SlewSettleTime

    # -- motion state ----------------------------------------------------------------------------

    @get("slewing")
    def slewing(self) -> bool:
        self._update()
        return self._is_slewing()

    @get("ispulseguiding")
    def ispulseguiding(self) -> bool:
        self._require(self.config.can_pulse_guide, "IsPulseGuiding", "CanPulseGuide is false")
        now = self._update()
        return any(p.end > now for p in self._pulses.values())

    @get("atpark")
    def atpark(self) -> bool:
        self._update()
        return self._parked

    @get("athome")
    def athome(self) -> bool:
        self._update()
        return self._at_home and self._slew is None

    # -- slews -----------------------------------------------------------------------------------

    def _equatorial_slew(self, what: str, ra: float, dec: float, flag: bool, can: str) -> None:
        self._require(flag, what, f"{can} is false")
        self._check_ra("RightAscension", ra)
        self._check_dec("Declination", dec)
        self._not_parked(what)
        if not self._tracking and self._limit_hit is None:
            raise InvalidOperation(f"{what} needs Tracking on (equatorial slews end tracking the target)")
        self._target_ra, self._target_dec = ra, dec
        self._start_slew("slew", "ra", ra, dec)
        # stopped at a limit: the slew away from it resumes tracking, as real mounts do
        self._tracking = True

    def _altaz_slew(self, what: str, azimuth: float, altitude: float, flag: bool, can: str) -> None:
        self._require(flag, what, f"{can} is false")
        self._check_altaz(altitude, azimuth)
        self._not_parked(what)
        if self._tracking:
            raise InvalidOperation(f"{what} needs Tracking off (an alt-az position is fixed on the ground)")
        ha, dec = altaz_to_hadec(altitude, azimuth, self._lat)
        self._start_slew("slew", "ha", ha, dec)

    @put("slewtocoordinatesasync", RightAscension=float, Declination=float)
    def slewtocoordinatesasync(self, RightAscension: float, Declination: float) -> None:
        self._equatorial_slew("SlewToCoordinatesAsync", RightAscension, Declination, self.config.can_slew_async, "CanSlewAsync")

    @put("slewtocoordinates", RightAscension=float, Declination=float)
    def slewtocoordinates(self, RightAscension: float, Declination: float) -> None:
        self._require(self.config.synchronous_slews, "SlewToCoordinates", "this mount slews asynchronously only")
        self._equatorial_slew("SlewToCoordinates", RightAscension, Declination, self.config.can_slew, "CanSlew")
        self._wait_for_slew()

    @put("slewtotargetasync")
    def slewtotargetasync(self) -> None:
        self._require(self.config.can_slew_async, "SlewToTargetAsync", "CanSlewAsync is false")
        ra, dec = self._target("SlewToTargetAsync")
        self._equatorial_slew("SlewToTargetAsync", ra, dec, True, "CanSlewAsync")

    @put("slewtotarget")
    def slewtotarget(self) -> None:
        self._require(self.config.synchronous_slews, "SlewToTarget", "this mount slews asynchronously only")
        self._require(self.config.can_slew, "SlewToTarget", "CanSlew is false")
        ra, dec = self._target("SlewToTarget")
        self._equatorial_slew("SlewToTarget", ra, dec, True, "CanSlew")
        self._wait_for_slew()

    @put("slewtoaltazasync", Azimuth=float, Altitude=float)
    def slewtoaltazasync(self, Azimuth: float, Altitude: float) -> None:
        self._altaz_slew("SlewToAltAzAsync", Azimuth, Altitude, self.config.can_slew_altaz_async, "CanSlewAltAzAsync")

    @put("slewtoaltaz", Azimuth=float, Altitude=float)
    def slewtoaltaz(self, Azimuth: float, Altitude: float) -> None:
        self._require(self.config.synchronous_slews, "SlewToAltAz", "this mount slews asynchronously only")
        self._altaz_slew("SlewToAltAz", Azimuth, Altitude, self.config.can_slew_altaz, "CanSlewAltAz")
        self._wait_for_slew()

    @put("abortslew")
    def abortslew(self) -> None:
        self._not_parked("AbortSlew")
        self._stop_motion()

    # -- syncs -----------------------------------------------------------------------------------

    def _sync_to(self, frame: str, c: float, dec: float) -> None:
        now = self._update()
        if self._slew is not None:
            raise InvalidOperation("cannot sync while the mount is slewing")
        self._pulses.clear()
        self._drift = _Drift(frame, c, dec, now)
        self._at_home = False
        self._limit_hit = None  # the mount is somewhere else now
        if self._german:
            self._pier = self._side_for(self._to_frame("ha", c, frame, now))
        self._rebase(now)

    @put("synctocoordinates", RightAscension=float, Declination=float)
    def synctocoordinates(self, RightAscension: float, Declination: float) -> None:
        self._require(self.config.can_sync, "SyncToCoordinates", "CanSync is false")
        self._check_ra("RightAscension", RightAscension)
        self._check_dec("Declination", Declination)
        self._not_parked("SyncToCoordinates")
        if not self._tracking:
            raise InvalidOperation("SyncToCoordinates needs Tracking on")
        self._target_ra, self._target_dec = RightAscension, Declination
        self._sync_to("ra", RightAscension, Declination)

    @put("synctotarget")
    def synctotarget(self) -> None:
        self._require(self.config.can_sync, "SyncToTarget", "CanSync is false")
        self._not_parked("SyncToTarget")
        ra, dec = self._target("SyncToTarget")
        if not self._tracking:
            raise InvalidOperation("SyncToTarget needs Tracking on")
        self._sync_to("ra", ra, dec)

    @put("synctoaltaz", Azimuth=float, Altitude=float)
    def synctoaltaz(self, Azimuth: float, Altitude: float) -> None:
        self._require(self.config.can_sync_altaz, "SyncToAltAz", "CanSyncAltAz is false")
        self._check_altaz(Altitude, Azimuth)
        self._not_parked("SyncToAltAz")
        if self._tracking:
            raise InvalidOperation("SyncToAltAz needs Tracking off")
        ha, dec = altaz_to_hadec(Altitude, Azimuth, self._lat)
        self._sync_to("ha", ha, dec)

    # -- park and home ---------------------------------------------------------------------------

    @put("park")
    def park(self) -> None:
        """Asynchronous: tracking stops, the mount slews to the park position, then AtPark is true."""
        self._require(self.config.can_park, "Park", "CanPark is false")
        self._update()
        if self._parked or (self._slew is not None and self._slew.kind == "park"):
            return
        self._set_tracking(False)
        ha, dec = altaz_to_hadec(*self._park_altaz, self._lat)
        self._start_slew("park", "ha", ha, dec)

    @put("unpark")
    def unpark(self) -> None:
        self._require(self.config.can_unpark, "Unpark", "CanUnpark is false")
        self._update()
        self._parked = False
        if self._slew is not None and self._slew.kind == "park":
            self._slew = replace(self._slew, kind="slew")  # still moving, but it will not end parked

    @put("setpark")
    def setpark(self) -> None:
        self._require(self.config.can_set_park, "SetPark", "CanSetPark is false")
        ha, dec = self._hadec(self._update())
        self._park_altaz = hadec_to_altaz(ha, dec, self._lat)

    @put("findhome")
    def findhome(self) -> None:
        """Asynchronous: tracking stops and the mount slews home; AtHome is true when it arrives.

        Tracking stops because a tracking mount would leave the home position at once.
        """
        self._require(self.config.can_find_home, "FindHome", "CanFindHome is false")
        self._not_parked("FindHome")
        if self._at_home and self._slew is None:
            return
        self._set_tracking(False)
        ha, dec = altaz_to_hadec(*self._home_altaz, self._lat)
        self._start_slew("home", "ha", ha, dec)

    # -- guiding and manual motion ---------------------------------------------------------------

    @put("pulseguide", Direction=int, Duration=int)
    def pulseguide(self, Direction: int, Duration: int) -> None:
        """Asynchronous: the guide rate is added for Duration ms of simulated time."""
        self._require(self.config.can_pulse_guide, "PulseGuide", "CanPulseGuide is false")
        if Direction not in (0, 1, 2, 3):
            raise InvalidValue(f"PulseGuide Direction {Direction} is invalid; valid: 0 North, 1 South, 2 East, 3 West")
        check_range("PulseGuide Duration", Duration, 0, 2147483647)
        self._not_parked("PulseGuide")
        now = self._update()
        if self._is_slewing():
            raise InvalidOperation("PulseGuide is not possible while the mount is slewing")
        self._rebase(now)  # folds the elapsed part of any earlier pulse into the drift
        seconds = Duration / 1000.0
        if Direction in (GuideDirection.North, GuideDirection.South):
            sign = 1.0 if Direction == GuideDirection.North else -1.0
            self._pulses["dec"] = _Pulse(now, now + seconds, 0.0, sign * self._guide_dec)
        else:
            sign = 1.0 if Direction == GuideDirection.East else -1.0
            self._pulses["ra"] = _Pulse(now, now + seconds, sign * self._guide_ra / 15.0, 0.0)
        self._at_home = False

    @put("moveaxis", Axis=int, Rate=float)
    def moveaxis(self, Axis: int, Rate: float) -> None:
        """Move an axis at Rate deg/s until told 0 (or AbortSlew); Slewing is true meanwhile."""
        if Axis not in (0, 1, 2):
            raise InvalidValue(f"MoveAxis: Axis {Axis} is invalid; valid axes are 0 (primary), 1 (secondary), 2 (tertiary)")
        if not self.canmoveaxis(Axis):
            raise NotImplementedErr(f"MoveAxis is not implemented for axis {Axis} (CanMoveAxis({Axis}) is false)")
        ranges = self._axis_rates(Axis)
        if not math.isfinite(Rate) or not (Rate == 0.0 or any(lo <= abs(Rate) <= hi for lo, hi in ranges)):
            valid = ", ".join(f"{lo:g} to {hi:g}" for lo, hi in ranges)
            raise InvalidValue(f"MoveAxis Rate '{Rate}' is an invalid value. The valid magnitudes are: {valid} deg/s (or 0 to stop).")
        self._not_parked("MoveAxis")
        now = self._update()
        if self._slew is not None:
            raise InvalidOperation("MoveAxis is not possible while a slew is in progress: AbortSlew first")
        self._rebase(now)
        self._move[Axis] = Rate
        if Rate != 0.0:
            self._at_home = False
        self._rebase(now)
        if not self._is_slewing() and self._german:
            self._pier = self._side_for(self._hadec(now)[0])

    # -- control API -----------------------------------------------------------------------------

    def operational_state(self) -> dict[str, Any]:
        """DeviceState values; UTCDate in the same form as the base's TimeStamp.

        The OpenAPI DeviceState value is a ``oneOf`` whose plain-string and Z-suffixed
        date-time branches overlap, so a Z-suffixed value can never validate; like TimeStamp,
        UTCDate is given there without the Z (it is UTC all the same).
        """
        state = super().operational_state()
        if isinstance(state.get("UTCDate"), str):
            state["UTCDate"] = state["UTCDate"].rstrip("Z")
        return state

    def extra_state(self) -> dict[str, Any]:
        self._update()
        ha, _ = self._hadec(self.clock.now())
        return {"Stuck": self._stuck, "HourAngle": ha, "LimitHit": self._limit_hit}

    def pointing(self) -> Pointing:
        """Where the mount points now, all read at one instant (for the dome and the camera)."""
        with self.lock:
            now = self._update()
            ra, dec = self._radec(now)
            ha = self._to_frame("ha", ra, "ra", now)
            alt, az = hadec_to_altaz(ha, dec, self._lat)
            slew = self._slew
            return Pointing(
                now, ra, dec, ha, alt, az, self._pier if self._german else PierSide.pierUnknown, self._lat,
                self._tracking, self._is_slewing(), self._parked, slew is not None and slew.kind == "park",
            )

    def _set_stuck(self, value: bool) -> None:
        """Stuck freezes a slew where it is now; un-sticking resumes it from there at full speed."""
        now = self._update()
        if value == self._stuck:
            return
        self._stuck = value
        slew = self._slew
        if slew is None:
            return
        frame, c, d = self._raw_position(now)
        degrees = max(abs(wrap12(slew.c_end - c)) * 15.0, abs(slew.d_end - d))
        self._slew = replace(
            slew, c_start=c, d_start=d, t_start=now, motion_s=degrees / self.config.slew_rate_deg_s, stuck=value
        )
        self._wake_waiters()

    def state_setters(self) -> dict[str, tuple[type, Callable[[Any], None]]]:
        setters = super().state_setters()
        setters["Stuck"] = (bool, self._set_stuck)
        setters["Tracking"] = (bool, lambda v: self._set_tracking(v, force=True))
        return setters
