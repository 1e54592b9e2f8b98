"""A slaved dome follows the served telescope, through alpyca: azimuth of the line of sight, the
mount's offsets from the dome's centre, a meridian flip, parking, and the opening the camera uses.

The expected azimuths of the offset cases are worked out by hand in each test (a line from the
offset point, a sphere around the centre), not with the emulator's own geometry.
"""

from __future__ import annotations

import math
import time

import pytest
from alpaca.dome import Dome, ShutterState
from alpaca.telescope import PierSide, Telescope

from emulator import Emulator
from emulator.config import ConfigError
from support import wait_for


def observatory(time_scale: float = 100, **dome: object) -> Emulator:
    return Emulator(
        {"devices": [
            {"type": "telescope", "connected": True},
            {"type": "dome", "connected": True, "can_slave": True, **dome},
        ]},
        time_scale=time_scale,
    )


def az_apart(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def settled(t: Telescope, d: Dome) -> bool:
    return not t.Slewing and not d.Slewing


def test_a_slaved_dome_follows_the_mounts_slews():
    with observatory() as emu:
        t, d = Telescope(emu.address, 0), Dome(emu.address, 0)
        d.Slaved = True
        assert d.Azimuth == pytest.approx(0.0)  # the mount is parked at the pole: due north
        t.SlewToAltAzAsync(120.0, 40.0)
        wait_for(lambda: d.Slewing, what="the dome to start turning with the mount")
        wait_for(lambda: settled(t, d), what="mount and dome to come to rest")
        assert az_apart(d.Azimuth, 120.0) <= 1.0  # follow_tolerance_deg
        t.SlewToAltAzAsync(250.0, 60.0)
        wait_for(lambda: d.Slewing, what="the dome to turn again")
        wait_for(lambda: settled(t, d), what="mount and dome to come to rest")
        assert az_apart(d.Azimuth, 250.0) <= 1.0
        # unslaved, it stays where it is when the mount moves
        d.Slaved = False
        t.SlewToAltAzAsync(30.0, 50.0)
        wait_for(lambda: not t.Slewing, what="the mount to stop")
        assert d.Slewing is False and az_apart(d.Azimuth, 250.0) <= 1.0


def test_a_slaved_dome_nobody_asks_has_been_turning_meanwhile():
    with observatory() as emu:
        t, d = Telescope(emu.address, 0), Dome(emu.address, 0)
        d.Slaved = True
        t.SlewToAltAzAsync(200.0, 40.0)
        wait_for(lambda: not t.Slewing, what="the mount to stop")  # only the mount is asked meanwhile
        time.sleep(0.5)  # 50 simulated s more: a 160 degree turn at 5 deg/s takes 32 s
        assert d.Slewing is False  # the first question: it is there already, not starting out now
        assert az_apart(d.Azimuth, 200.0) <= 1.0


def test_the_mounts_offset_from_the_dome_centre_moves_the_dome_by_the_computed_amount():
    radius, north = 2.0, 0.5
    with observatory(dome_radius_m=radius, mount_offset_north_m=north, follow_tolerance_deg=0.05,
                     shutter_initial="open", slit_width_deg=10.0) as emu:
        t, d = Telescope(emu.address, 0), Dome(emu.address, 0)
        t.SlewToAltAzAsync(90.0, 0.0)  # due east on the horizon
        wait_for(lambda: not t.Slewing, what="the mount to stop")
        d.Slaved = True
        wait_for(lambda: settled(t, d), what="the dome to come to rest")
        # the sight line y = north, z = 0 leaves the sphere at x = sqrt(R^2 - north^2)
        expected = math.degrees(math.atan2(math.sqrt(radius**2 - north**2), north))
        assert expected == pytest.approx(75.52, abs=0.01)
        assert az_apart(d.Azimuth, expected) <= 0.05
        assert az_apart(d.Azimuth, t.Azimuth) == pytest.approx(90.0 - expected, abs=0.06)
        # the opening is in front of the telescope although the dome's azimuth is 14.5 deg off the
        # mount's (more than half the 10 deg slit): it is judged from where the telescope stands
        assert emu.device("dome").opening_faces(t.Azimuth, t.Altitude) is True
        assert emu.device("dome").opening_faces(expected, 0.0) is False  # that way the sight line misses


def test_a_meridian_flip_moves_a_dome_around_a_german_mount():
    radius, offset = 2.0, 0.5
    with observatory(dome_radius_m=radius, german_offset_m=offset, follow_tolerance_deg=0.05) as emu:
        t, d = Telescope(emu.address, 0), Dome(emu.address, 0)
        t.SlewToAltAzAsync(0.0, 90.0)  # the zenith, tube east of the pier (pierEast, looking west)
        wait_for(lambda: not t.Slewing, what="the mount to stop")
        assert t.SideOfPier == PierSide.pierEast
        d.Slaved = True
        wait_for(lambda: settled(t, d), what="the dome to come to rest")
        # the optical axis runs straight up from 0.5 m east of the pivot: it meets the dome due east
        assert az_apart(d.Azimuth, 90.0) <= 0.05
        assert d.Altitude == pytest.approx(math.degrees(math.asin(math.sqrt(radius**2 - offset**2) / radius)), abs=0.06)
        t.SideOfPier = PierSide.pierWest
        wait_for(lambda: settled(t, d), what="the flip and the dome to come to rest")
        assert t.SideOfPier == PierSide.pierWest
        assert az_apart(d.Azimuth, 270.0) <= 0.05


def test_a_slaved_dome_parks_when_the_mount_parks():
    with observatory(park_azimuth=200.0) as emu:
        t, d = Telescope(emu.address, 0), Dome(emu.address, 0)
        t.SlewToAltAzAsync(90.0, 45.0)
        d.Slaved = True
        wait_for(lambda: settled(t, d), what="mount and dome to come to rest")
        assert d.AtPark is False
        t.Park()
        wait_for(lambda: t.AtPark and d.AtPark, what="mount and dome to park")
        assert d.Azimuth == pytest.approx(200.0) and d.Slewing is False
        t.Unpark()
        t.SlewToAltAzAsync(100.0, 45.0)
        wait_for(lambda: settled(t, d) and not d.AtPark, what="the dome to follow the unparked mount")
        assert az_apart(d.Azimuth, 100.0) <= 1.0


def test_the_opening_faces_the_telescope_only_when_open_and_turned_to_it():
    with observatory(shutter_travel_s=10.0, slit_width_deg=20.0) as emu:
        t, d = Telescope(emu.address, 0), Dome(emu.address, 0)
        dome = emu.device("dome")
        assert dome.opening_faces(0.0, 30.0) is False  # the shutter is closed
        d.OpenShutter()
        wait_for(lambda: d.ShutterStatus == ShutterState.shutterOpen, what="the shutter to open")
        assert d.Azimuth == pytest.approx(0.0)
        assert dome.opening_faces(0.0, 30.0) is True
        assert dome.opening_faces(9.0, 0.0) is True and dome.opening_faces(11.0, 0.0) is False  # half of 20 deg
        # the slit is a band over the zenith: higher up, a given width spans more azimuth
        assert dome.opening_faces(19.0, 60.0) is True and dome.opening_faces(21.0, 60.0) is False
        assert dome.opening_faces(90.0, 30.0) is False
        assert dome.opening_faces(200.0, 89.9) is True  # the slit runs over the zenith
        # slaved, it turns to where the telescope looks
        t.SlewToAltAzAsync(150.0, 35.0)
        wait_for(lambda: not t.Slewing, what="the mount to stop")
        assert dome.opening_faces(t.Azimuth, t.Altitude) is False
        d.Slaved = True
        wait_for(lambda: settled(t, d), what="the dome to come to rest")
        assert dome.opening_faces(t.Azimuth, t.Altitude) is True
        d.CloseShutter()
        assert dome.opening_faces(t.Azimuth, t.Altitude) is False


def test_a_slaved_dome_without_a_telescope_stays_put():
    with Emulator({"devices": [{"type": "dome", "connected": True, "can_slave": True}]}, time_scale=100) as emu:
        d = Dome(emu.address, 0)
        d.Slaved = True
        time.sleep(0.1)
        assert d.Slewing is False and d.Azimuth == pytest.approx(0.0) and d.Slaved is True


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"dome_radius_m": 1.0, "mount_offset_north_m": 0.8, "german_offset_m": 0.3}, "dome_radius_m"),
        ({"slit_width_deg": 0}, "slit_width_deg"),
        ({"german_offset_m": -0.1}, "german_offset_m"),
    ],
)
def test_bad_dome_geometry_names_the_key(options, key):
    with pytest.raises(ConfigError, match=key):
        Emulator({"devices": [{"type": "dome", **options}]})
