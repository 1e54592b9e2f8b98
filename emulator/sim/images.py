"""Synthetic frames: deterministic star fields, rendered with noise into Int32 pixels.

The camera model returns an :class:`ImageData`; the HTTP layer (:mod:`emulator.http.imagearray`)
encodes it as JSON or ImageBytes. Pixels are a numpy array indexed ``[x, y]`` (mono) or
``[x, y, plane]`` (colour): in C order that is exactly the Alpaca serialisation order (the
rightmost index changes fastest).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ImageData:
    """Pixels indexed ``[x, y]`` (mono) or ``[x, y, plane]`` (colour), as Alpaca orders them.

    The array is treated as immutable: the camera may hand the same one to several downloads.
    """

    pixels: np.ndarray

    def __post_init__(self) -> None:
        if self.pixels.ndim not in (2, 3):
            raise ValueError(f"an image has rank 2 or 3, got shape {self.pixels.shape}")
        if not np.issubdtype(self.pixels.dtype, np.integer):
            raise ValueError(f"ImageArray pixels are integers (Int32), got {self.pixels.dtype}")

    @property
    def rank(self) -> int:
        return int(self.pixels.ndim)


# -- synthetic star fields ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StarField:
    """Stars fixed on one sensor: position in unbinned pixels, flux in e-/s, RGB weights.

    The sky does not move between exposures, so the same stars appear in every frame of a
    camera; only the noise changes with the exposure number.
    """

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    colour: np.ndarray  # shape (n, 3), mean 1 per star
    sigma: float  # Gaussian sigma in unbinned pixels


def _seed_words(*parts: int) -> list[int]:
    """Non-negative 64-bit words for numpy's SeedSequence (any Python int seed is fine)."""
    return [p & 0xFFFFFFFFFFFFFFFF for p in parts]


def make_star_field(seed: int, device_number: int, width: int, height: int, count: int, fwhm_px: float, flux_max: float) -> StarField:
    """A deterministic star field for ``seed`` and device: same arguments, same stars."""
    rng = np.random.default_rng(_seed_words(seed, device_number, 0x5_7A25))
    x = rng.uniform(0, width, count)
    y = rng.uniform(0, height, count)
    # Many faint stars, few bright ones: a steep power law of the uniform draw.
    flux = flux_max * rng.uniform(0.0, 1.0, count) ** 4 + flux_max * 0.002
    tint = rng.uniform(-0.4, 0.4, count)  # red (+) to blue (-)
    colour = np.stack([1.0 + tint, np.ones(count), 1.0 - tint], axis=1)
    return StarField(x=x, y=y, flux=flux, colour=colour, sigma=fwhm_px / 2.3548)


@dataclass(frozen=True)
class FrameSpec:
    """What one exposure saw: subframe (binned pixels), exposure and sensor response."""

    start_x: int
    start_y: int
    num_x: int
    num_y: int
    bin_x: int
    bin_y: int
    duration: float
    light: bool
    planes: int = 1  # 3 for a colour (Rank 3) sensor
    bayer: tuple[float, float, float, float] | None = None  # RGGB response at (0,0),(1,0),(0,1),(1,1)
    bayer_offset: tuple[int, int] = (0, 0)
    sky_rate: float = 20.0  # e-/s per unbinned pixel
    dark_rate: float = 0.1  # e-/s per unbinned pixel
    bias_adu: float = 1000.0
    read_noise_adu: float = 8.0
    electrons_per_adu: float = 1.0
    max_adu: int = 65535


_PLANE_SKY = np.array([1.0, 0.9, 0.7])  # a slightly red night sky


def _pixel_profile(centre: float, sigma: float, first: int, last: int) -> np.ndarray:
    """A unit Gaussian integrated over pixels ``first..last-1`` (flux is conserved when undersampled)."""
    scale = 1.0 / (math.sqrt(2.0) * sigma)
    edges = [math.erf((edge - centre) * scale) for edge in range(first, last + 1)]
    return 0.5 * np.diff(np.asarray(edges))


def render_frame(stars: StarField, spec: FrameSpec, rng: np.random.Generator) -> np.ndarray:
    """Render one exposure as Int32 ADU, indexed ``[x, y]`` or ``[x, y, plane]``.

    Electrons from sky, stars and dark current, shot and read noise (one Gaussian draw with the
    combined variance, far cheaper than Poisson and indistinguishable at these levels), offset
    by the bias and clipped to ``0..max_adu``.
    """
    nx, ny, planes = spec.num_x, spec.num_y, spec.planes
    shape = (nx, ny) if planes == 1 else (nx, ny, planes)
    binned_area = spec.bin_x * spec.bin_y
    electrons = np.full(shape, spec.dark_rate * spec.duration * binned_area, dtype=np.float64)
    if spec.light and nx > 0 and ny > 0:
        sky = spec.sky_rate * spec.duration * binned_area
        electrons += sky if planes == 1 else sky * _PLANE_SKY[:planes]
        sx, sy = stars.sigma / spec.bin_x, stars.sigma / spec.bin_y
        reach_x, reach_y = 4.0 * sx + 1.0, 4.0 * sy + 1.0
        cx_all = stars.x / spec.bin_x - spec.start_x
        cy_all = stars.y / spec.bin_y - spec.start_y
        visible = (cx_all > -reach_x) & (cx_all < nx + reach_x) & (cy_all > -reach_y) & (cy_all < ny + reach_y)
        for i in np.flatnonzero(visible):
            cx, cy = float(cx_all[i]), float(cy_all[i])
            x0, x1 = max(0, int(cx - reach_x)), min(nx, int(cx + reach_x) + 1)
            y0, y1 = max(0, int(cy - reach_y)), min(ny, int(cy + reach_y) + 1)
            if x0 >= x1 or y0 >= y1:
                continue
            psf = np.outer(_pixel_profile(cx, sx, x0, x1), _pixel_profile(cy, sy, y0, y1))
            total = float(stars.flux[i]) * spec.duration
            if planes == 1:
                electrons[x0:x1, y0:y1] += total * psf
            else:
                electrons[x0:x1, y0:y1, :] += (total * psf)[:, :, None] * stars.colour[i, :planes]
    if spec.bayer is not None and planes == 1 and spec.bin_x == 1 and spec.bin_y == 1:
        px = (np.arange(nx) + spec.start_x + spec.bayer_offset[0]) % 2
        py = (np.arange(ny) + spec.start_y + spec.bayer_offset[1]) % 2
        response = np.asarray(spec.bayer).reshape(2, 2)  # [x % 2, y % 2]
        electrons *= response[px[:, None], py[None, :]]
    gain = spec.electrons_per_adu
    signal_adu = electrons / gain
    noise_sigma = np.sqrt(electrons / (gain * gain) + spec.read_noise_adu**2)
    adu = spec.bias_adu + signal_adu + noise_sigma * rng.standard_normal(shape)
    np.clip(np.rint(adu, out=adu), 0, spec.max_adu, out=adu)
    return adu.astype(np.int32)


def exposure_rng(seed: int, device_number: int, exposure_number: int) -> np.random.Generator:
    """The noise generator of one exposure: same seed, device and exposure number, same noise."""
    return np.random.default_rng(_seed_words(seed, device_number, exposure_number))
