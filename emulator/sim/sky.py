"""The sky over the site: stars fixed on the celestial sphere, the Sun, the Moon and the sky's glow.

Stars are a pure function of position and seed: the sphere is cut into tiles of about one
square degree (declination bands one degree high, each cut into equal RA spans), and a tile's
stars are drawn from a generator seeded by ``(seed, band, index)``. The same RA/Dec therefore
shows the same stars in any process and any run, whichever neighbouring tiles were asked for
first. Star counts follow the real sky's cumulative law, log10 N(<m) rising ~0.45 per magnitude
at the bright end and ~0.35 at the faint end (about 10 stars per square degree to V = 10,
~1000 to 16).

Sun and Moon use low-precision formulas (an arc minute or so for the Sun, a degree for the Moon):
enough to tell day from twilight from night and whether the Moon is up. Sky brightness is a
surface brightness in V mag per square arc second, from the Sun's altitude through twilight to
the configured dark-night value, brightened by a Moon above the horizon.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from emulator.sim.devices.telescope import gmst_hours, hadec_to_altaz

#: Catalogue depth: every tile holds its stars to this magnitude (fainter ones drown in any sky).
CATALOGUE_MAG = 19.5
#: Height of a declination band (degrees).
BAND_DEG = 1.0
_BANDS = int(round(180.0 / BAND_DEG))
_J2000_UNIX = 946728000.0  # 2000-01-01T12:00:00Z

# log10 of stars per square degree brighter than V magnitude m (an all-sky average).
_COUNT_MAGS = np.array([-1.5, 2.0, 6.0, 10.0, 13.0, 16.0, 18.0, 20.0])
_COUNT_LOG = np.array([-4.6, -2.6, -0.92, 0.88, 1.9, 2.86, 3.6, 4.3])


def cumulative_count(mag: float | np.ndarray) -> float | np.ndarray:
    """Stars per square degree brighter than ``mag`` (V), by the all-sky cumulative law."""
    return 10.0 ** np.interp(mag, _COUNT_MAGS, _COUNT_LOG)


def _mags_from_uniform(u: np.ndarray, mag_limit: float) -> np.ndarray:
    """Inverse of the cumulative law: uniform draws in (0, 1] to magnitudes up to ``mag_limit``."""
    log_n = np.interp(mag_limit, _COUNT_MAGS, _COUNT_LOG) + np.log10(u)
    return np.interp(log_n, _COUNT_LOG, _COUNT_MAGS)


# -- tiles of the celestial sphere -----------------------------------------------------------------


def band_of(dec_deg: float) -> int:
    """The declination band (0 at the south pole) holding ``dec_deg``."""
    return min(_BANDS - 1, max(0, int(math.floor((dec_deg + 90.0) / BAND_DEG))))


@functools.cache
def band_tiles(band: int) -> int:
    """How many equal RA spans band ``band`` is cut into (tiles of about one square degree)."""
    lo = math.radians(-90.0 + band * BAND_DEG)
    hi = math.radians(-90.0 + (band + 1) * BAND_DEG)
    width_deg = 360.0 * (math.sin(hi) - math.sin(lo)) / math.radians(BAND_DEG)  # equal-area width
    return max(1, int(round(width_deg / BAND_DEG)))


@dataclass(frozen=True)
class Stars:
    """Stars as arrays: RA and Dec in degrees, V magnitude."""

    ra: np.ndarray
    dec: np.ndarray
    mag: np.ndarray

    def __len__(self) -> int:
        return int(self.ra.size)


@functools.lru_cache(maxsize=64)  # ~0.3 MB a tile
def tile_stars(seed: int, band: int, index: int) -> Stars:
    """The stars of one tile: a pure function of ``(seed, band, index)``."""
    n_tiles = band_tiles(band)
    if not 0 <= band < _BANDS or not 0 <= index < n_tiles:
        raise ValueError(f"no tile ({band}, {index}): bands are 0..{_BANDS - 1}, band {band} has {n_tiles} tiles")
    rng = np.random.default_rng([seed & 0xFFFFFFFFFFFFFFFF, band, index, 0x5C7])
    s_lo = math.sin(math.radians(-90.0 + band * BAND_DEG))
    s_hi = math.sin(math.radians(-90.0 + (band + 1) * BAND_DEG))
    area = math.degrees(1.0) ** 2 * (2.0 * math.pi / n_tiles) * (s_hi - s_lo)
    count = int(rng.poisson(float(cumulative_count(CATALOGUE_MAG)) * area))
    span = 360.0 / n_tiles
    ra = (index + rng.random(count)) * span
    dec = np.degrees(np.arcsin(s_lo + (s_hi - s_lo) * rng.random(count)))
    mag = _mags_from_uniform(1.0 - rng.random(count), CATALOGUE_MAG)  # 1 - [0, 1): never log10(0)
    for a in (ra, dec, mag):
        a.setflags(write=False)
    return Stars(ra, dec, mag)


def tiles_near(ra_deg: float, dec_deg: float, radius_deg: float) -> list[tuple[int, int]]:
    """Every tile that may hold a star within ``radius_deg`` of (ra, dec)."""
    out: list[tuple[int, int]] = []
    for band in range(band_of(dec_deg - radius_deg), band_of(dec_deg + radius_deg) + 1):
        n = band_tiles(band)
        lo = -90.0 + band * BAND_DEG
        worst = max(abs(lo), abs(lo + BAND_DEG))
        cos_d = math.cos(math.radians(min(89.999, worst)))
        half = radius_deg / cos_d if cos_d > 0 else 360.0
        if half >= 180.0 or worst >= 89.0:
            out.extend((band, i) for i in range(n))
            continue
        span = 360.0 / n
        first = int(math.floor((ra_deg - half) / span))
        last = int(math.floor((ra_deg + half) / span))
        out.extend(sorted({(band, i % n) for i in range(first, last + 1)}))
    return out


def stars_near(seed: int, ra_deg: float, dec_deg: float, radius_deg: float, mag_limit: float = CATALOGUE_MAG) -> Stars:
    """The stars of every tile within reach of (ra, dec), brighter than ``mag_limit``."""
    return stars_in(seed, tiles_near(ra_deg, dec_deg, radius_deg), mag_limit)


def stars_in(seed: int, tiles: list[tuple[int, int]], mag_limit: float = CATALOGUE_MAG) -> Stars:
    """The stars of the given tiles, brighter than ``mag_limit``, in the tiles' order."""
    parts = [tile_stars(seed, band, index) for band, index in tiles]
    if not parts:
        return Stars(np.empty(0), np.empty(0), np.empty(0))
    ra = np.concatenate([p.ra for p in parts])
    dec = np.concatenate([p.dec for p in parts])
    mag = np.concatenate([p.mag for p in parts])
    keep = mag < mag_limit
    return Stars(ra[keep], dec[keep], mag[keep])


def gnomonic(stars: Stars, ra0_deg: float, dec0_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tangent-plane coordinates (xi towards east, eta towards north, arcsec) about (ra0, dec0),
    and a mask of the stars on the near hemisphere (the others have no image)."""
    a = np.radians(stars.ra - ra0_deg)
    d = np.radians(stars.dec)
    d0 = math.radians(dec0_deg)
    cos_d = np.cos(d)
    cos_c = math.sin(d0) * np.sin(d) + math.cos(d0) * cos_d * np.cos(a)
    front = cos_c > 0.2
    safe = np.where(front, cos_c, 1.0)
    arcsec = math.degrees(1.0) * 3600.0
    xi = cos_d * np.sin(a) / safe * arcsec
    eta = (math.cos(d0) * np.sin(d) - math.sin(d0) * cos_d * np.cos(a)) / safe * arcsec
    return xi, eta, front


# -- Sun and Moon ----------------------------------------------------------------------------------


def _days(utc: datetime) -> float:
    return (utc.timestamp() - _J2000_UNIX) / 86400.0


def gmst_deg(utc: datetime) -> float:
    """Greenwich mean sidereal time in degrees (the mount's own, so the sky agrees with SiderealTime)."""
    return gmst_hours(utc) * 15.0


def _ecliptic_to_equatorial(lon_deg: float, lat_deg: float, days: float) -> tuple[float, float]:
    eps = math.radians(23.439 - 0.0000004 * days)
    lon, lat = math.radians(lon_deg), math.radians(lat_deg)
    ra = math.atan2(math.sin(lon) * math.cos(eps) - math.tan(lat) * math.sin(eps), math.cos(lon))
    dec = math.asin(math.sin(lat) * math.cos(eps) + math.cos(lat) * math.sin(eps) * math.sin(lon))
    return math.degrees(ra) % 360.0, math.degrees(dec)


def sun_radec(utc: datetime) -> tuple[float, float]:
    """The Sun's apparent RA and Dec (degrees), to about an arc minute."""
    n = _days(utc)
    mean_lon = 280.460 + 0.9856474 * n
    g = math.radians(357.528 + 0.9856003 * n)
    lon = mean_lon + 1.915 * math.sin(g) + 0.020 * math.sin(2 * g)
    return _ecliptic_to_equatorial(lon % 360.0, 0.0, n)


def moon_radec(utc: datetime) -> tuple[float, float]:
    """The Moon's geocentric RA and Dec (degrees), to about a degree (the largest terms only)."""
    n = _days(utc)
    mean_lon = 218.316 + 13.176396 * n
    anomaly = math.radians(134.963 + 13.064993 * n)
    node_arg = math.radians(93.272 + 13.229350 * n)
    elong = math.radians(297.850 + 12.190749 * n)
    lon = mean_lon + 6.289 * math.sin(anomaly) + 1.274 * math.sin(2 * elong - anomaly) + 0.658 * math.sin(2 * elong)
    lat = 5.128 * math.sin(node_arg)
    return _ecliptic_to_equatorial(lon % 360.0, lat, n)


def altaz(ra_deg: float, dec_deg: float, utc: datetime, lat_deg: float, lon_deg: float) -> tuple[float, float]:
    """Altitude and azimuth (degrees, azimuth from north through east) of (ra, dec) at the site."""
    return hadec_to_altaz((gmst_deg(utc) + lon_deg - ra_deg) / 15.0, dec_deg, lat_deg)


def separation_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Angle between two directions on the sphere (degrees)."""
    d1, d2 = math.radians(dec1), math.radians(dec2)
    c = math.sin(d1) * math.sin(d2) + math.cos(d1) * math.cos(d2) * math.cos(math.radians(ra1 - ra2))
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


# -- sky brightness --------------------------------------------------------------------------------

#: Sun altitude (deg) -> twilight/day sky surface brightness (V mag/arcsec^2) on its own.
_TWILIGHT_ALT = np.array([-18.0, -15.0, -12.0, -9.0, -6.0, -3.0, 0.0, 10.0, 30.0, 90.0])
_TWILIGHT_MU = np.array([24.5, 21.6, 19.6, 17.4, 15.0, 12.2, 9.5, 6.5, 4.5, 3.8])
#: The altitudes the daylight override stands for.
DAY_SUN_ALT = 30.0
NIGHT_SUN_ALT = -90.0


def sun_altitude_for(sunlight: bool | None, computed: float) -> float:
    """The Sun's altitude the sky should show: the override (True day, False night) or the real one."""
    if sunlight is None:
        return computed
    return DAY_SUN_ALT if sunlight else NIGHT_SUN_ALT


def phase_name(sun_alt: float) -> str:
    """'day', 'civil', 'nautical', 'astronomical' (twilight) or 'night' for a Sun altitude."""
    if sun_alt >= -0.833:
        return "day"
    if sun_alt >= -6.0:
        return "civil"
    if sun_alt >= -12.0:
        return "nautical"
    if sun_alt >= -18.0:
        return "astronomical"
    return "night"


def _flux(mu: float) -> float:
    return 10.0 ** (-0.4 * mu)


def sky_brightness(sun_alt: float, moon_alt: float = -90.0, moon_illumination: float = 0.0,
                   night_mu: float = 21.0) -> float:
    """Sky surface brightness (V mag/arcsec^2): dark night, plus twilight or day from the Sun's
    altitude, plus moonlight when the Moon is up (brighter the fuller and higher it is)."""
    total = _flux(night_mu)
    if sun_alt > _TWILIGHT_ALT[0]:
        total += _flux(float(np.interp(sun_alt, _TWILIGHT_ALT, _TWILIGHT_MU)))
    if moon_alt > 0.0 and moon_illumination > 0.0:
        # a full Moon high up brings a dark site to ~18 mag/arcsec^2
        total += _flux(18.0) * moon_illumination ** 2 * math.sin(math.radians(moon_alt))
    return -2.5 * math.log10(total)


@dataclass(frozen=True)
class SkyState:
    """The sky at one instant at one site: Sun, Moon and the surface brightness they make."""

    sun_alt: float
    moon_alt: float
    moon_illumination: float
    brightness: float  # V mag/arcsec^2
    phase: str


def sky_state(utc: datetime, lat_deg: float, lon_deg: float, sunlight: bool | None = None,
              night_mu: float = 21.0) -> SkyState:
    """Sun, Moon and sky brightness at ``utc`` for the site, honouring the daylight override."""
    sun_ra, sun_dec = sun_radec(utc)
    moon_ra, moon_dec = moon_radec(utc)
    real_sun_alt = altaz(sun_ra, sun_dec, utc, lat_deg, lon_deg)[0]
    sun_alt = sun_altitude_for(sunlight, real_sun_alt)
    moon_alt = altaz(moon_ra, moon_dec, utc, lat_deg, lon_deg)[0]
    illumination = (1.0 - math.cos(math.radians(separation_deg(sun_ra, sun_dec, moon_ra, moon_dec)))) / 2.0
    mu = sky_brightness(sun_alt, moon_alt, illumination, night_mu)
    return SkyState(sun_alt, moon_alt, illumination, mu, phase_name(sun_alt))
