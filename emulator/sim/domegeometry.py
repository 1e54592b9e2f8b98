"""Where a telescope's line of sight meets its dome: the azimuth a slaved dome must turn to.

A dome is a sphere of radius R around its centre. The mount's pivot (where the polar and the
declination axes cross) sits at an offset from that centre (east, north, up, metres). On a
German mount the optical axis does not pass through the pivot: it is displaced along the
declination axis by the German offset, towards the east for a tube on the east side of the pier
(pierEast) and towards the west on pierWest, which is why a flip moves the dome. The line of
sight starts at that displaced point and runs towards (altitude, azimuth); the dome's opening
must be where it leaves the sphere.

Coordinates are local east-north-up. The equatorial frame's axes are, in it: the meridian point
of the equator (hour angle 0), the east point (hour angle -6 h) and the celestial pole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from emulator.sim.devices.telescope import PierSide, altaz_to_hadec


@dataclass(frozen=True)
class DomeLayout:
    """The dome's size and where the mount stands in it (metres)."""

    radius: float
    east: float = 0.0
    north: float = 0.0
    up: float = 0.0
    german_offset: float = 0.0


Vector = tuple[float, float, float]


def _direction(altitude: float, azimuth: float) -> Vector:
    a, z = math.radians(altitude), math.radians(azimuth)
    return (math.cos(a) * math.sin(z), math.cos(a) * math.cos(z), math.sin(a))


def _equatorial_to_local(v: Vector, latitude: float) -> Vector:
    """A vector given on (meridian point, east point, pole) in east-north-up."""
    p = math.radians(latitude)
    x, y, z = v
    return (y, -x * math.sin(p) + z * math.cos(p), x * math.cos(p) + z * math.sin(p))


def tube_offset(altitude: float, azimuth: float, latitude: float, side: PierSide) -> Vector:
    """Unit vector from the pivot to the optical axis along the declination axis (0 when side unknown).

    The declination axis lies in the equator's plane, a quarter turn from the tube's hour angle:
    at HA - 6 h for pierEast (so a tube looking west sits east of the pier), HA + 6 h for pierWest.
    """
    if side not in (PierSide.pierEast, PierSide.pierWest):
        return (0.0, 0.0, 0.0)
    ha, _ = altaz_to_hadec(altitude, azimuth, latitude)
    h = math.radians(ha * 15.0 + (-90.0 if side == PierSide.pierEast else 90.0))
    return _equatorial_to_local((math.cos(h), -math.sin(h), 0.0), latitude)


def where_sight_meets_dome(
    layout: DomeLayout, altitude: float, azimuth: float, latitude: float, side: PierSide
) -> tuple[float, float]:
    """(azimuth, altitude) seen from the dome's centre of the point where the line of sight leaves it."""
    d = _direction(altitude, azimuth)
    w = tube_offset(altitude, azimuth, latitude, side)
    q = (
        layout.east + layout.german_offset * w[0],
        layout.north + layout.german_offset * w[1],
        layout.up + layout.german_offset * w[2],
    )
    # |q + s d| = R with s > 0: s = -q.d + sqrt((q.d)^2 - |q|^2 + R^2); q lies inside the sphere
    qd = sum(a * b for a, b in zip(q, d))
    qq = sum(a * a for a in q)
    s = -qd + math.sqrt(max(0.0, qd * qd - qq + layout.radius**2))
    x = tuple(a + s * b for a, b in zip(q, d))
    az = math.degrees(math.atan2(x[0], x[1])) % 360.0
    alt = math.degrees(math.asin(max(-1.0, min(1.0, x[2] / layout.radius))))
    return (0.0 if az >= 360.0 else az), alt


def in_slit(dome_azimuth: float, azimuth: float, altitude: float, slit_width: float) -> bool:
    """Whether the direction (azimuth, altitude) from the dome's centre passes through a slit of
    ``slit_width`` degrees centred on ``dome_azimuth``, running from the horizon over the zenith.

    The slit is a band either side of the great circle through the zenith at the dome's azimuth:
    a direction's angular distance from that circle must be within half the width, and it must
    lie on the slit's side of the sky (near the zenith every azimuth qualifies).
    """
    half = math.radians(slit_width / 2.0)
    a, dz = math.radians(altitude), math.radians(azimuth - dome_azimuth)
    across = math.asin(max(-1.0, min(1.0, math.cos(a) * math.sin(dz))))
    return abs(across) <= half and math.cos(a) * math.cos(dz) >= -math.sin(half)
