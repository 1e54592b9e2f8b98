"""From the optical train's state to the light on the sensor: one small function per physical step.

Pixel scale from focal length and pixel size; stars projected on the tangent plane at the mount's
pointing and turned by the rotator's sky angle (at angle 0, +y is north and +x west); the PSF from
seeing and defocus (a V-curve: the blur disc grows linearly with the distance from best focus,
and adds to seeing in quadrature); fluxes through aperture, filter and cloud; the sky's glow per
pixel; the calibrator's even light for flats. :func:`sky_image` puts them together for one
exposure, from the train as it was at the exposure's start and at its end (stars trail between the
two pointings).
"""

from __future__ import annotations

import math

import numpy as np

from emulator.sim import sky
from emulator.sim.images import SkyImage
from emulator.sim.optics import TrainState

ARCSEC_PER_RADIAN = 206264.806
#: Blur the optics add even in perfect focus and seeing (FWHM, arcsec).
OPTICS_FWHM_ARCSEC = 0.8
#: Largest PSF FWHM rendered (unbinned pixels): a star defocused further is simply this blurred.
MAX_FWHM_PX = 40.0
#: Fewest electrons a star must give over the exposure to be drawn at all.
MIN_STAR_ELECTRONS = 0.5
#: Points along a slew whose tiles are gathered, and the catalogue depth for a slew's streaks.
PATH_SAMPLES = 48
CATALOGUE_FOR_SLEWS = 15.0


def pixel_scale_arcsec(focal_length_m: float, pixel_um: float) -> float:
    """Arc seconds of sky per pixel."""
    return ARCSEC_PER_RADIAN * pixel_um * 1e-6 / focal_length_m


def defocus_fwhm_px(focus_error_steps: float, step_um: float, f_ratio: float, pixel_um: float) -> float:
    """Width of the defocused star: the blur disc (focus error / focal ratio), as a Gaussian FWHM
    of half the disc's diameter."""
    return 0.5 * abs(focus_error_steps) * step_um / f_ratio / pixel_um


def psf_fwhm_px(seeing_arcsec: float, scale_arcsec: float, defocus_px: float) -> float:
    """Star FWHM in pixels: seeing, optics and defocus in quadrature (at most MAX_FWHM_PX)."""
    seeing_px = math.hypot(seeing_arcsec, OPTICS_FWHM_ARCSEC) / scale_arcsec
    return min(MAX_FWHM_PX, math.hypot(seeing_px, defocus_px))


def cloud_transmission(cloud_cover_pct: float) -> float:
    """Fraction of starlight that gets through the clouds (a full overcast lets 3 % through)."""
    return 1.0 - 0.97 * min(100.0, max(0.0, cloud_cover_pct)) / 100.0


def star_rate(mag: np.ndarray, zero_point: float, area_m2: float, throughput: float) -> np.ndarray:
    """e-/s from stars of V magnitude ``mag`` (``zero_point``: e-/s per m^2 from a V = 0 star)."""
    return zero_point * area_m2 * throughput * np.power(10.0, -0.4 * mag)


def sky_rate(mu: float, zero_point: float, area_m2: float, pixel_area_arcsec2: float, throughput: float) -> float:
    """e-/s per pixel from a sky of ``mu`` V mag/arcsec^2."""
    return zero_point * area_m2 * throughput * pixel_area_arcsec2 * 10.0 ** (-0.4 * mu)


def lamp_rate(lamp_fraction: float, full_rate: float, throughput: float) -> float:
    """e-/s per pixel from the calibrator at ``lamp_fraction`` of its MaxBrightness."""
    return full_rate * lamp_fraction * throughput


def sensor_xy(stars: sky.Stars, ra_hours: float, dec_deg: float, rotator_deg: float, scale_x: float,
              scale_y: float, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unbinned sensor pixel coordinates of ``stars`` with the sensor's centre at (ra, dec), and
    which stars are in front of the telescope at all."""
    xi, eta, front = sky.gnomonic(stars, ra_hours * 15.0, dec_deg)
    theta = math.radians(rotator_deg)
    c, s = math.cos(theta), math.sin(theta)
    x = width / 2.0 + (-xi * c + eta * s) / scale_x
    y = height / 2.0 + (xi * s + eta * c) / scale_y
    return x, y, front


def field_radius_deg(width: int, height: int, scale_x: float, scale_y: float) -> float:
    """Half the sensor's diagonal on the sky, with a margin for the PSF's wings."""
    return math.hypot(width * scale_x, height * scale_y) / 2.0 / 3600.0 * 1.05 + 0.01


def path_tiles(start: TrainState, end: TrainState, radius: float, apart: float) -> list[tuple[int, int]]:
    """The tiles the field sweeps over from the start pointing to the end one (in order)."""
    steps = min(PATH_SAMPLES, int(math.ceil(apart / radius))) if apart > 0 else 0
    ra0, ra1 = start.ra_hours * 15.0, end.ra_hours * 15.0
    ra1 = ra0 + ((ra1 - ra0 + 180.0) % 360.0 - 180.0)  # the short way round
    tiles: set[tuple[int, int]] = set()
    for i in range(steps + 1):
        f = i / steps if steps else 0.0
        tiles.update(sky.tiles_near((ra0 + (ra1 - ra0) * f) % 360.0, start.dec_deg + (end.dec_deg - start.dec_deg) * f, radius))
    return sorted(tiles)


def sky_image(start: TrainState, end: TrainState, *, seed: int, width: int, height: int, pixel_x_um: float,
              pixel_y_um: float, zero_point: float, flat_rate: float, duration: float) -> SkyImage:
    """What reaches the sensor over one exposure, from the train at its start and its end."""
    scale_x = pixel_scale_arcsec(start.focal_length_m, pixel_x_um)
    scale_y = pixel_scale_arcsec(start.focal_length_m, pixel_y_um)
    light = (float(start.sees_sky) + float(end.sees_sky)) / 2.0
    throughput = start.throughput
    f_ratio = start.focal_length_m / start.aperture_m
    fwhm = psf_fwhm_px(start.seeing_arcsec, math.sqrt(scale_x * scale_y),
                       defocus_fwhm_px(start.focus_error_steps, start.step_um, f_ratio, math.sqrt(pixel_x_um * pixel_y_um)))
    background = lamp_rate((start.lamp + end.lamp) / 2.0, flat_rate, throughput)
    background += light * sky_rate(start.sky.brightness, zero_point, start.aperture_area_m2, scale_x * scale_y, throughput)
    empty = np.empty(0)
    if light <= 0.0 or throughput <= 0.0:
        return SkyImage(empty, empty, empty, empty, empty, fwhm / 2.3548, background)
    radius = field_radius_deg(width, height, scale_x, scale_y)
    apart = sky.separation_deg(start.ra_hours * 15.0, start.dec_deg, end.ra_hours * 15.0, end.dec_deg)
    stars = sky.stars_in(seed, path_tiles(start, end, radius, apart), CATALOGUE_FOR_SLEWS if apart > 2 * radius else sky.CATALOGUE_MAG)
    rate = star_rate(stars.mag, zero_point, start.aperture_area_m2, throughput) * cloud_transmission(start.cloud_cover_pct) * light
    x0, y0, front0 = sensor_xy(stars, start.ra_hours, start.dec_deg, start.rotator_deg, scale_x, scale_y, width, height)
    if apart > 0.0:
        x1, y1, front1 = sensor_xy(stars, end.ra_hours, end.dec_deg, start.rotator_deg, scale_x, scale_y, width, height)
    else:
        x1, y1, front1 = x0, y0, front0
    reach = 4.0 * fwhm
    on_sensor = (  # the trail's box overlaps the sensor
        (np.maximum(x0, x1) > -reach) & (np.minimum(x0, x1) < width + reach)
        & (np.maximum(y0, y1) > -reach) & (np.minimum(y0, y1) < height + reach)
    )
    keep = front0 & front1 & on_sensor & (rate * duration >= MIN_STAR_ELECTRONS)
    return SkyImage(x0[keep], y0[keep], x1[keep], y1[keep], rate[keep], fwhm / 2.3548, background)
