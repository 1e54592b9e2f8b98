"""Dome (IDomeV3): a rotating dome with a shutter that takes time to travel.

Three independent axes move on the simulation clock, each computed lazily from where and when
its motion started: azimuth (the shorter way round), altitude of the opening, and the shutter
(a position between 0 closed and 1 open). ``Slewing`` is true while any of them moves, as the
interface defines "any part of the dome". Capability flags in the config take members away the
way the interface lets a real dome lack them (NotImplemented), so clients can be rehearsed
against a roll-off roof as well as a full observatory dome.

Slaved (``Slaved`` true, needs ``can_slave``), the dome follows the emulator's telescope: it
turns to where the telescope's line of sight leaves the dome (:mod:`emulator.sim.domegeometry`:
the mount's offset from the dome's centre and the German offset of the tube, so a meridian flip
moves the dome), and slews (Slewing true) whenever it is more than ``follow_tolerance_deg`` off.
When the mount parks, a slaved dome parks too. Like every motion here, following is lazy: the
dome re-aims each time it is asked anything (a member, the control API, or the camera asking
:meth:`Dome.opening_faces`); once the mount is at rest, from where the dome was when it last
looked, as if it had been turning towards the line of sight it sees now ever since.

For rehearsals the control API can jam the shutter: it stops where it is and reports
ShutterStatus error (4) when asked to move, without any fault rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Callable, Literal

from pydantic import Field, model_validator

from emulator.sim.clock import SimClock
from emulator.sim.devices.base import Device, DeviceConfig, Member, get, put
from emulator.sim.domegeometry import DomeLayout, in_slit, where_sight_meets_dome
from emulator.sim.devices.telescope import PierSide
from emulator.sim.errors import InvalidValue, Slaved, check_range

#: Azimuths closer than this (degrees) count as the same place, e.g. for AtHome.
AZ_TOLERANCE = 0.05


class ShutterState(IntEnum):
    Open = 0
    Closed = 1
    Opening = 2
    Closing = 3
    Error = 4


class DomeConfig(DeviceConfig):
    type: Literal["dome"] = "dome"
    can_find_home: bool = Field(True, description="CanFindHome: FindHome and AtHome are available")
    can_park: bool = Field(True, description="CanPark: Park and AtPark are available")
    can_set_altitude: bool = Field(True, description="CanSetAltitude: the opening moves in altitude")
    can_set_azimuth: bool = Field(True, description="CanSetAzimuth: the dome rotates (False: a roll-off roof)")
    can_set_park: bool = Field(True, description="CanSetPark: SetPark stores the current position")
    can_set_shutter: bool = Field(True, description="CanSetShutter: the shutter or roof can be opened and closed")
    can_slave: bool = Field(False, description="CanSlave: an integrated mount/dome system that can slave")
    can_sync_azimuth: bool = Field(True, description="CanSyncAzimuth: SyncToAzimuth is available")
    shutter_travel_s: float = Field(20.0, ge=0, le=3600, description="Simulated seconds for a full open or close")
    shutter_initial: Literal["closed", "open", "error"] = Field("closed", description="ShutterStatus at start")
    azimuth_rate_deg_s: float = Field(5.0, gt=0, le=360, description="Azimuth slew rate (degrees per simulated s)")
    altitude_rate_deg_s: float = Field(2.0, gt=0, le=90, description="Altitude slew rate (degrees per simulated s)")
    home_azimuth: float = Field(0.0, ge=0, lt=360, description="Azimuth of the home position (degrees)")
    park_azimuth: float = Field(180.0, ge=0, lt=360, description="Azimuth of the park position (degrees)")
    park_altitude: float = Field(0.0, ge=0, le=90, description="Altitude of the opening when parked (degrees)")
    start_parked: bool = Field(False, description="Start at the park position with AtPark true (else at home)")
    initial_altitude: float = Field(0.0, ge=0, le=90, description="Altitude of the opening at start (degrees)")
    dome_radius_m: float = Field(1.5, gt=0, le=50, description="Radius of the dome (metres)")
    mount_offset_east_m: float = Field(0.0, ge=-50, le=50, description="Mount pivot east of the dome's centre (metres)")
    mount_offset_north_m: float = Field(0.0, ge=-50, le=50, description="Mount pivot north of the dome's centre (metres)")
    mount_offset_up_m: float = Field(0.0, ge=-50, le=50, description="Mount pivot above the dome's centre (metres)")
    german_offset_m: float = Field(
        0.0, ge=0, le=10, description="German mounts: optical axis from the polar axis along the declination axis (metres)"
    )
    slit_width_deg: float = Field(30.0, gt=0, le=180, description="Width of the shutter's opening, degrees of azimuth")
    follow_tolerance_deg: float = Field(
        1.0, gt=0, le=45, description="Slaved: the dome re-aims when it is more than this off the line of sight (degrees)"
    )

    @model_validator(mode="after")
    def _park_needs_position(self) -> "DomeConfig":
        if self.start_parked and not self.can_park:
            raise ValueError("start_parked needs can_park = true")
        return self

    @model_validator(mode="after")
    def _mount_inside(self) -> "DomeConfig":
        reach = math.hypot(self.mount_offset_east_m, self.mount_offset_north_m, self.mount_offset_up_m) + self.german_offset_m
        if reach >= self.dome_radius_m:
            raise ValueError(
                f"dome_radius_m = {self.dome_radius_m:g} leaves the telescope outside the dome: the mount offsets and "
                f"german_offset_m reach {reach:g} m from its centre"
            )
        return self

    @property
    def layout(self) -> DomeLayout:
        return DomeLayout(
            self.dome_radius_m, self.mount_offset_east_m, self.mount_offset_north_m, self.mount_offset_up_m,
            self.german_offset_m,
        )


@dataclass
class _Axis:
    """One linear axis: where it rests, and while moving (start time, start value, signed distance)."""

    value: float
    motion: tuple[float, float, float] | None = None
    rate: float = 1.0

    def at(self, now: float) -> float:
        """The value now; settles a finished motion."""
        if self.motion is None:
            return self.value
        start_t, start, dist = self.motion
        duration = abs(dist) / self.rate
        if now - start_t >= duration:
            self.value = start + dist
            self.motion = None
            return self.value
        return start + dist * (now - start_t) / duration

    def start(self, now: float, dist: float) -> None:
        current = self.at(now)
        self.value = current
        self.motion = (now, current, dist) if dist != 0 else None

    def stop(self, now: float) -> None:
        self.value = self.at(now)
        self.motion = None

    def moving(self, now: float) -> bool:
        self.at(now)
        return self.motion is not None


class Dome(Device):
    device_type = "dome"
    type_name = "Dome"
    interface_version = 3
    config_class = DomeConfig
    state_names = ("Altitude", "AtHome", "AtPark", "Azimuth", "ShutterStatus", "Slewing")

    def __init__(self, config: DomeConfig, clock: SimClock, seed: int = 0) -> None:
        super().__init__(config, clock, seed)
        self.config: DomeConfig = config
        start_az = config.park_azimuth if config.start_parked else config.home_azimuth
        start_alt = config.park_altitude if config.start_parked else config.initial_altitude
        # azimuth is unwrapped while moving and reported modulo 360
        self._az = _Axis(start_az, rate=config.azimuth_rate_deg_s)
        self._alt = _Axis(start_alt, rate=config.altitude_rate_deg_s)
        self._shutter = _Axis({"closed": 0.0, "open": 1.0, "error": 0.5}[config.shutter_initial])
        self._shutter.rate = 1.0 / config.shutter_travel_s if config.shutter_travel_s > 0 else float("inf")
        # Error when the position alone does not tell (stopped part-way, jammed)
        self._shutter_error = config.shutter_initial == "error"
        self._jammed = False
        # what the azimuth motion in progress is for: a plain slew, FindHome or Park
        self._az_purpose: Literal["slew", "home", "park"] = "slew"
        self._at_home = not config.start_parked or _az_distance(start_az, config.home_azimuth) < AZ_TOLERANCE
        self._at_park = config.start_parked
        self._park_az = config.park_azimuth
        self._park_alt = config.park_altitude
        self._slaved = False
        self._followed_at = 0.0  # sim time the slaved dome last looked at the telescope

    # -- settling lazily computed motion --------------------------------------------------------

    def _azimuth(self) -> float:
        was_moving = self._az.motion is not None
        value = self._az.at(self.clock.now())
        if was_moving and self._az.motion is None:
            self._az.value = value = value % 360.0
            self._finish_az_motion()
        return value % 360.0

    def _finish_az_motion(self) -> None:
        purpose, self._az_purpose = self._az_purpose, "slew"
        if purpose == "home":
            self._at_home = True
        else:
            self._at_home = _az_distance(self._az.value, self.config.home_azimuth) < AZ_TOLERANCE
        if purpose == "park" and not self._alt.moving(self.clock.now()):
            self._at_park = True
        elif purpose == "park":
            self._az_purpose = "park"  # parked once the altitude arrives too

    def _altitude(self) -> float:
        value = self._alt.at(self.clock.now())
        if self._az_purpose == "park" and self._az.motion is None and self._alt.motion is None:
            self._az_purpose = "slew"
            self._at_park = True
        return value

    def _az_moving(self) -> bool:
        self._azimuth()
        return self._az.motion is not None

    def _alt_moving(self) -> bool:
        self._altitude()
        return self._alt.motion is not None

    def _shutter_moving(self) -> bool:
        return self._shutter.moving(self.clock.now())

    def _shutter_status(self) -> ShutterState:
        now = self.clock.now()
        pos = self._shutter.at(now)
        if self._shutter.motion is not None:
            return ShutterState.Opening if self._shutter.motion[2] > 0 else ShutterState.Closing
        if self._shutter_error:
            return ShutterState.Error
        if pos >= 1.0:
            return ShutterState.Open
        if pos <= 0.0:
            return ShutterState.Closed
        return ShutterState.Error

    # -- following the mount ----------------------------------------------------------------------

    def invoke(self, member: Member, args: dict[str, Any]) -> Any:
        self._follow()
        return super().invoke(member, args)

    def get_state(self) -> dict[str, Any]:
        with self.lock:
            self._follow()
            return super().get_state()

    def _telescope(self) -> Any:
        return self.site.first("telescope") if self.site is not None else None

    def sight(self, altitude: float, azimuth: float) -> tuple[float, float]:
        """(azimuth, altitude) where the telescope's line of sight towards (altitude, azimuth) leaves the
        dome, with the pier side the telescope has now (the mount's offsets make them differ)."""
        tel = self._telescope()
        if tel is None:
            return where_sight_meets_dome(self.config.layout, altitude, azimuth, 0.0, PierSide.pierUnknown)
        p = tel.pointing()
        return where_sight_meets_dome(self.config.layout, altitude, azimuth, p.latitude, p.side_of_pier)

    def _az_heading(self) -> float:
        """Where the azimuth is, or is heading to while it moves (degrees)."""
        self._azimuth()
        if self._az.motion is None:
            return self._az.value % 360.0
        _, start, dist = self._az.motion
        return (start + dist) % 360.0

    def _follow(self) -> None:
        """Slaved: re-aim at the telescope's line of sight (or park with it); no telescope, no motion."""
        if not self._slaved or not self.connected:
            return
        tel = self._telescope()
        if tel is None:
            return
        p = tel.pointing()
        if p.at_park or p.parking:
            if self.config.can_park and not self._at_park and self._az_purpose != "park":
                self._park_now()
            return
        az, alt = where_sight_meets_dome(self.config.layout, p.altitude, p.azimuth, p.latitude, p.side_of_pier)
        tolerance = self.config.follow_tolerance_deg
        since, self._followed_at = self._followed_at, self.clock.now()
        if p.slewing:  # the line of sight is on the move: the dome turns with it from now (Slewing true)
            since = self._followed_at
        if self.config.can_set_azimuth and _az_distance(self._az_heading(), az) > tolerance:
            self._chase(self._az, az, since, circular=True)
            self._az_purpose = "slew"
            self._at_home = False
            self._at_park = False
            self._azimuth()  # settles a turn already over by now
        if self.config.can_set_altitude:
            alt = min(90.0, max(0.0, alt))
            self._altitude()
            heading = self._alt.value if self._alt.motion is None else self._alt.motion[1] + self._alt.motion[2]
            if abs(heading - alt) > tolerance:
                self._chase(self._alt, alt, since, circular=False)
                self._at_park = False
                self._altitude()

    def _chase(self, axis: "_Axis", target: float, since: float, circular: bool) -> None:
        """Move ``axis`` towards ``target`` as if since the dome last looked: a slaved dome follows
        all the time, so one nobody asked for a while has been moving meanwhile, not only from now."""
        start = min(since, self.clock.now())
        if axis.motion is not None and start < axis.motion[0]:
            start = axis.motion[0]
        position = axis.at(start)
        dist = target - position
        if circular:
            dist = (dist + 180.0) % 360.0 - 180.0  # the shorter way round
        axis.value = position
        axis.motion = (start, position, dist) if abs(dist) > 1e-9 else None

    def opening_faces(self, azimuth_deg: float, altitude_deg: float) -> bool:
        """Whether a telescope looking towards (azimuth, altitude) sees the sky through the dome.

        True when the shutter is fully open and the line of sight, from where the telescope stands
        in the dome, passes through the slit (``slit_width_deg`` wide at the dome's azimuth, from
        the horizon over the zenith). A dome that does not rotate (a roll-off roof) faces every
        way; one without a controllable shutter is always open. Read-only apart from letting a
        slaved dome re-aim first, as any question to it does. For the camera's occlusion.
        """
        with self.lock:
            self._follow()
            if self.config.can_set_shutter and self._shutter_status() != ShutterState.Open:
                return False
            if not self.config.can_set_azimuth:
                return True
            az, alt = self.sight(altitude_deg, azimuth_deg)
            return in_slit(self._azimuth(), az, alt, self.config.slit_width_deg)

    def _park_now(self) -> None:
        """Park (the member's motion, without its Slaved guard: here the dome parks *because* it is slaved)."""
        if self.config.can_set_altitude:
            self._slew_altitude(self._park_alt)
        self._slew_azimuth(self._park_az, "park")
        self._azimuth()  # a zero-length park completes at once

    # -- capability checks ------------------------------------------------------------------------

    def _require_unslaved(self, member: str) -> None:
        if self._slaved:
            raise Slaved(f"{member} is not allowed while the dome is slaved to the telescope")

    # -- capabilities -----------------------------------------------------------------------------

    @get("canfindhome")
    def canfindhome(self) -> bool:
        return self.config.can_find_home

    @get("canpark")
    def canpark(self) -> bool:
        return self.config.can_park

    @get("cansetaltitude")
    def cansetaltitude(self) -> bool:
        return self.config.can_set_altitude

    @get("cansetazimuth")
    def cansetazimuth(self) -> bool:
        return self.config.can_set_azimuth

    @get("cansetpark")
    def cansetpark(self) -> bool:
        return self.config.can_set_park

    @get("cansetshutter")
    def cansetshutter(self) -> bool:
        return self.config.can_set_shutter

    @get("canslave")
    def canslave(self) -> bool:
        return self.config.can_slave

    @get("cansyncazimuth")
    def cansyncazimuth(self) -> bool:
        return self.config.can_sync_azimuth

    # -- position and status ----------------------------------------------------------------------

    @get("altitude")
    def altitude(self) -> float:
        self._require(self.config.can_set_altitude, "Altitude", "this dome has no altitude control")
        return round(self._altitude(), 6)

    @get("azimuth")
    def azimuth(self) -> float:
        self._require(self.config.can_set_azimuth, "Azimuth", "this dome does not rotate (CanSetAzimuth false)")
        return round(self._azimuth(), 6) % 360.0

    @get("athome")
    def athome(self) -> bool:
        self._require(self.config.can_find_home, "AtHome", "this dome cannot find its home position")
        self._azimuth()
        return self._at_home and self._az.motion is None

    @get("atpark")
    def atpark(self) -> bool:
        self._require(self.config.can_park, "AtPark", "this dome cannot park")
        self._azimuth()
        self._altitude()
        return self._at_park

    @get("shutterstatus")
    def shutterstatus(self) -> int:
        self._require(self.config.can_set_shutter, "ShutterStatus", "this dome has no controllable shutter")
        return int(self._shutter_status())

    @get("slewing")
    def slewing(self) -> bool:
        # "Any part of the dome": azimuth, altitude and the shutter.
        return self._az_moving() or self._alt_moving() or self._shutter_moving()

    @get("slaved")
    def get_slaved(self) -> bool:
        # Reading is always allowed: False when slaving is not supported.
        return self._slaved

    @put("slaved", Slaved=bool)
    def put_slaved(self, Slaved: bool) -> None:
        self._require(self.config.can_slave, "Slaved", "this dome cannot be slaved (CanSlave false)")
        if Slaved and not self._slaved:
            self._followed_at = self.clock.now()
        self._slaved = Slaved
        self._follow()

    # -- shutter ----------------------------------------------------------------------------------

    def _move_shutter(self, target: float) -> None:
        now = self.clock.now()
        pos = self._shutter.at(now)
        if pos == target and self._shutter.motion is None:
            self._shutter_error = False  # already there: success, whatever was reported before
            return
        if self._jammed:
            # Accepted, but the shutter cannot move: ASCOM reports that as ShutterStatus error.
            self._shutter.stop(now)
            self._shutter_error = True
            return
        self._shutter_error = False
        self._shutter.start(now, target - pos)

    @put("openshutter")
    def openshutter(self) -> None:
        self._require(self.config.can_set_shutter, "OpenShutter", "this dome has no controllable shutter")
        self._move_shutter(1.0)

    @put("closeshutter")
    def closeshutter(self) -> None:
        self._require(self.config.can_set_shutter, "CloseShutter", "this dome has no controllable shutter")
        self._move_shutter(0.0)

    # -- azimuth and altitude ---------------------------------------------------------------------

    def _slew_azimuth(self, target: float, purpose: Literal["slew", "home", "park"]) -> None:
        current = self._azimuth()
        dist = (target - current + 180.0) % 360.0 - 180.0  # the shorter way round
        self._at_home = False
        self._at_park = False
        self._az_purpose = purpose
        if abs(dist) < 1e-9 or not self.config.can_set_azimuth:
            # already there, or a roof that does not rotate: nothing to wait for
            self._az.stop(self.clock.now())
            self._az.value = target
            self._finish_az_motion()
            return
        self._az.start(self.clock.now(), dist)

    def _slew_altitude(self, target: float) -> None:
        current = self._altitude()
        self._at_park = False
        if self._az_purpose == "park":
            self._az_purpose = "slew"  # a new slew cancels a park in progress
        self._alt.start(self.clock.now(), target - current)

    @put("slewtoazimuth", Azimuth=float)
    def slewtoazimuth(self, Azimuth: float) -> None:
        self._require(self.config.can_set_azimuth, "SlewToAzimuth", "this dome does not rotate (CanSetAzimuth false)")
        if not 0.0 <= Azimuth < 360.0:
            raise InvalidValue(f"SlewToAzimuth - '{Azimuth}' is an invalid value. The valid range is: 0 to less than 360.")
        self._require_unslaved("SlewToAzimuth")
        self._slew_azimuth(Azimuth, "slew")

    @put("slewtoaltitude", Altitude=float)
    def slewtoaltitude(self, Altitude: float) -> None:
        self._require(self.config.can_set_altitude, "SlewToAltitude", "this dome has no altitude control")
        check_range("SlewToAltitude", Altitude, 0.0, 90.0)
        self._require_unslaved("SlewToAltitude")
        self._slew_altitude(Altitude)

    @put("synctoazimuth", Azimuth=float)
    def synctoazimuth(self, Azimuth: float) -> None:
        self._require(self.config.can_sync_azimuth, "SyncToAzimuth", "this dome cannot sync its azimuth")
        if not 0.0 <= Azimuth < 360.0:
            raise InvalidValue(f"SyncToAzimuth - '{Azimuth}' is an invalid value. The valid range is: 0 to less than 360.")
        self._require_unslaved("SyncToAzimuth")
        offset = Azimuth - self._azimuth()
        # shift a slew in progress too, so it still ends where the dome physically aimed
        self._az.value += offset
        if self._az.motion is not None:
            start_t, start, dist = self._az.motion
            self._az.motion = (start_t, start + offset, dist)
        else:
            self._az.value %= 360.0
            self._at_home = _az_distance(self._az.value, self.config.home_azimuth) < AZ_TOLERANCE

    @put("findhome")
    def findhome(self) -> None:
        self._require(self.config.can_find_home, "FindHome", "this dome cannot find its home position")
        self._require_unslaved("FindHome")
        self._slew_azimuth(self.config.home_azimuth, "home")

    @put("park")
    def park(self) -> None:
        self._require(self.config.can_park, "Park", "this dome cannot park")
        if self.atpark():
            return  # already parked: success, Slewing stays False
        self._require_unslaved("Park")
        self._park_now()

    @put("setpark")
    def setpark(self) -> None:
        self._require(self.config.can_set_park, "SetPark", "this dome's park position is fixed (CanSetPark false)")
        self._require_unslaved("SetPark")
        self._park_az = self._azimuth()
        self._park_alt = self._altitude()

    @put("abortslew")
    def abortslew(self) -> None:
        """Stop every part of the dome; a shutter stopped part-way reports error."""
        now = self.clock.now()
        self._azimuth()
        self._az_purpose = "slew"
        if self._az.motion is not None:
            self._az.stop(now)
            self._az.value %= 360.0
            self._at_home = _az_distance(self._az.value, self.config.home_azimuth) < AZ_TOLERANCE
        self._altitude()
        self._alt.stop(now)
        if self._shutter.moving(now):
            self._shutter.stop(now)
            self._shutter_error = 0.0 < self._shutter.value < 1.0
        self._slaved = False

    # -- simulation-only state --------------------------------------------------------------------

    def extra_state(self) -> dict[str, Any]:
        return {
            "ShutterJammed": self._jammed,
            "ShutterPosition": round(self._shutter.at(self.clock.now()), 6),
            "Slaved": self._slaved,
        }

    def _set_jammed(self, value: bool) -> None:
        now = self.clock.now()
        self._shutter.at(now)
        self._jammed = value
        if value and self._shutter.motion is not None:
            # jammed mid-travel: it stops where it is, and says so
            self._shutter.stop(now)
            self._shutter_error = True

    def _set_shutter_position(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"ShutterPosition must be between 0 (closed) and 1 (open), got {value}")
        self._shutter.value, self._shutter.motion, self._shutter_error = value, None, False

    def _set_azimuth(self, value: float) -> None:
        if not 0.0 <= value < 360.0:
            raise ValueError(f"Azimuth must be in [0, 360), got {value}")
        self._az.value, self._az.motion, self._az_purpose = value, None, "slew"
        self._at_home = _az_distance(value, self.config.home_azimuth) < AZ_TOLERANCE
        self._at_park = False

    def state_setters(self) -> dict[str, tuple[type, Callable[[Any], None]]]:
        setters = super().state_setters()
        setters["ShutterJammed"] = (bool, self._set_jammed)
        setters["ShutterPosition"] = (float, self._set_shutter_position)
        setters["Azimuth"] = (float, self._set_azimuth)
        return setters


def _az_distance(a: float, b: float) -> float:
    """Angular distance between two azimuths, 0..180 degrees."""
    return abs((a - b + 180.0) % 360.0 - 180.0)
