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


def _apply_bayer(electrons: np.ndarray, spec: FrameSpec) -> None:
    """Weight an unbinned mono subframe ``[x, y]`` by the colour filter array's response, in place
    and in ``electrons``' own precision (a binned or colour frame is left as it is)."""
    if spec.bayer is None or spec.planes != 1 or spec.bin_x != 1 or spec.bin_y != 1:
        return
    nx, ny = electrons.shape
    px = (np.arange(nx) + spec.start_x + spec.bayer_offset[0]) % 2
    py = (np.arange(ny) + spec.start_y + spec.bayer_offset[1]) % 2
    response = np.asarray(spec.bayer, dtype=electrons.dtype).reshape(2, 2)  # [x % 2, y % 2]
    electrons *= response[px[:, None], py[None, :]]


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
    _apply_bayer(electrons, spec)
    gain = spec.electrons_per_adu
    signal_adu = electrons / gain
    noise_sigma = np.sqrt(electrons / (gain * gain) + spec.read_noise_adu**2)
    adu = spec.bias_adu + signal_adu + noise_sigma * rng.standard_normal(shape)
    np.clip(np.rint(adu, out=adu), 0, spec.max_adu, out=adu)
    return adu.astype(np.int32)


def exposure_rng(seed: int, device_number: int, exposure_number: int) -> np.random.Generator:
    """The noise generator of one exposure: same seed, device and exposure number, same noise."""
    return np.random.default_rng(_seed_words(seed, device_number, exposure_number))


# -- the sky through the optical train ---------------------------------------------------------------

#: Binned x-columns per noise block: each block's noise has its own generator, so a pixel's noise
#: depends on where it is on the sensor, not on the subframe (a subframe is a crop of the frame).
NOISE_BLOCK = 64
#: Most pixel additions spent on stars in one exposure (a badly defocused frame keeps its brightest).
STAMP_BUDGET = 6_000_000


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, vectorised (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7)."""
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.copysign(1.0 - poly * np.exp(-a * a), x)


@dataclass(frozen=True)
class SkyImage:
    """What reaches the sensor during one exposure, in unbinned sensor pixels.

    Each star runs in a straight line from ``(x0, y0)`` at the exposure's start to ``(x1, y1)``
    at its end (equal when the mount tracks); ``rate`` is its e-/s. ``background`` is the even
    light per unbinned pixel (sky glow and the calibrator), in e-/s.
    """

    x0: np.ndarray
    y0: np.ndarray
    x1: np.ndarray
    y1: np.ndarray
    rate: np.ndarray
    sigma: float
    background: float


def _trail_steps(image: SkyImage) -> int:
    """Sub-positions along the trails: about two per PSF sigma of the longest trail (at most 256)."""
    if image.rate.size == 0:
        return 1
    length = float(np.max(np.hypot(image.x1 - image.x0, image.y1 - image.y0)))
    return int(min(256, max(1, math.ceil(2.0 * length / max(image.sigma, 0.3)) + 1)))


def _axis_profiles(centres: np.ndarray, sigma: float, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """First pixel and per-pixel integrated unit Gaussian along one axis, for every centre:
    ``(first (n,), weights (n, 2 * radius + 1))``, computed in sensor coordinates."""
    first = np.floor(centres).astype(np.int64) - radius
    edges = first[:, None] + np.arange(2 * radius + 2)[None, :] - centres[:, None]
    cdf = erf(edges * (1.0 / (math.sqrt(2.0) * sigma)))
    return first, 0.5 * np.diff(cdf, axis=1)


def add_stars(electrons: np.ndarray, image: SkyImage, spec: FrameSpec) -> None:
    """Add every star's electrons to ``electrons`` (binned subframe ``[x, y]``), trailed if it moved."""
    nx, ny = electrons.shape
    sx, sy = image.sigma / spec.bin_x, image.sigma / spec.bin_y
    rx, ry = int(math.ceil(4.0 * sx)) + 1, int(math.ceil(4.0 * sy)) + 1
    kx, ky = 2 * rx + 1, 2 * ry + 1
    total = image.rate * spec.duration
    order = np.arange(total.size)
    steps = _trail_steps(image)
    limit = STAMP_BUDGET // (kx * ky * steps)
    if order.size > limit:  # the brightest, in their original order (the choice is the sensor's, not the subframe's)
        order = np.sort(np.argsort(-total, kind="stable")[:limit])
    flat = electrons.reshape(-1)  # a view: electrons is C-contiguous
    for step in range(steps):
        f = (step + 0.5) / steps if steps > 1 else 0.0
        cx = (image.x0[order] + (image.x1[order] - image.x0[order]) * f) / spec.bin_x
        cy = (image.y0[order] + (image.y1[order] - image.y0[order]) * f) / spec.bin_y
        near = (
            (cx > spec.start_x - rx) & (cx < spec.start_x + nx + rx) & (cy > spec.start_y - ry) & (cy < spec.start_y + ny + ry)
        )
        if not near.any():
            continue
        fx, wx = _axis_profiles(cx[near], sx, rx)
        fy, wy = _axis_profiles(cy[near], sy, ry)
        amount = (total[order][near] / steps).astype(np.float32)
        stamps = (wx[:, :, None] * wy[:, None, :]).astype(np.float32) * amount[:, None, None]
        px = fx[:, None] + np.arange(kx)[None, :] - spec.start_x  # subframe pixel indices
        py = fy[:, None] + np.arange(ky)[None, :] - spec.start_y
        inside = ((px >= 0) & (px < nx))[:, :, None] & ((py >= 0) & (py < ny))[:, None, :]
        index = px[:, :, None] * ny + py[:, None, :]
        np.add.at(flat, index[inside], stamps[inside])


def render_sky(image: SkyImage | None, spec: FrameSpec, seed_words: tuple[int, ...], sensor_ny: int) -> np.ndarray:
    """Render one exposure of what the optical train saw as Int32 ADU (``[x, y]``, or
    ``[x, y, plane]`` for a colour sensor); ``image`` None is a dark (nothing reaches the sensor).

    Electrons are float32 (one frame), the noise is drawn block by block (so the peak stays near
    three frames: electrons, output, one block of noise). Shot noise is Gaussian with the Poisson
    variance (what Poisson noise is above a few electrons, at a tenth of its cost), plus read noise;
    the bias is added and the result clipped to ``0..max_adu``. ``sensor_ny`` is the binned
    sensor height: a pixel's noise comes from its block of full sensor columns, so it is the same
    in a subframe as in the full frame.
    """
    nx, ny, planes = spec.num_x, spec.num_y, spec.planes
    shape = (nx, ny) if planes == 1 else (nx, ny, planes)
    area = spec.bin_x * spec.bin_y
    electrons = np.empty((nx, ny), dtype=np.float32)
    level = spec.dark_rate * spec.duration * area
    if image is not None:
        level += image.background * spec.duration * area
    electrons.fill(level)
    if image is not None and image.rate.size and nx > 0 and ny > 0:
        add_stars(electrons, image, spec)
    if planes > 1:  # a colour sensor sees the (grey) sky in every plane
        electrons = np.repeat(electrons[:, :, None], planes, axis=2)
    _apply_bayer(electrons, spec)
    out = np.empty(shape, dtype=np.int32)
    inv_gain = np.float32(1.0 / spec.electrons_per_adu)
    read_var = np.float32(spec.read_noise_adu**2)
    bias = np.float32(spec.bias_adu)
    top = np.float32(spec.max_adu)
    if int(top) > spec.max_adu:  # float32 rounded up past MaxADU (and maybe past Int32)
        top = np.nextafter(top, np.float32(0))
    first_block = spec.start_x // NOISE_BLOCK
    last_block = (spec.start_x + nx - 1) // NOISE_BLOCK if nx > 0 else first_block - 1
    for block in range(first_block, last_block + 1):
        b0 = block * NOISE_BLOCK
        rng = np.random.default_rng(_seed_words(*seed_words, block))
        noise_shape = (NOISE_BLOCK, sensor_ny) if planes == 1 else (NOISE_BLOCK, sensor_ny, planes)
        noise = rng.standard_normal(noise_shape, dtype=np.float32)
        x0, x1 = max(b0, spec.start_x), min(b0 + NOISE_BLOCK, spec.start_x + nx)
        noise = noise[x0 - b0:x1 - b0, spec.start_y:spec.start_y + ny]
        e = electrons[x0 - spec.start_x:x1 - spec.start_x]
        signal = e * inv_gain
        sigma = np.sqrt(signal * inv_gain + read_var)
        sigma *= noise
        sigma += signal
        sigma += bias
        np.rint(sigma, out=sigma)
        np.clip(sigma, 0, top, out=sigma)
        out[x0 - spec.start_x:x1 - spec.start_x] = sigma
    return out
