"""``expect_image``: measure the camera's latest frame (through its AlpacaDevice) against bounds.

Rehearsals of autofocus, flats and closing on bad weather are about what the frames show, not
only what the devices say: the sky level of a flat, the width of the stars, whether light still
reaches the sensor. The measures are deliberately plain, so a bound reads as what it means:

    mean, median, max   of all pixels (ADU)
    star_fwhm           FWHM in pixels of the brightest star (flux over peak, a Gaussian's relation;
                        the background is the frame's median, the star's box 2 x ``box`` pixels)
    star_signal         ADU above the median within ``box`` pixels of the brightest pixel
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field, model_validator

from scenarios.compare import describe_exception
from scenarios.steps.base import Check, DeviceStep, step_kind

if TYPE_CHECKING:
    from scenarios.timeline import Run

MEASURES = ("mean", "median", "max", "star_fwhm", "star_signal")


def _star_box(pixels: np.ndarray, box: int) -> np.ndarray:
    x, y = np.unravel_index(int(np.argmax(pixels)), pixels.shape[:2])
    cut = pixels[max(0, x - box):x + box, max(0, y - box):y + box]
    return cut - np.median(pixels)


def measure(pixels: np.ndarray, what: str, box: int = 20) -> float:
    """One figure of a frame (see the module docstring)."""
    pixels = np.asarray(pixels, dtype=np.float64)
    if what == "mean":
        return float(pixels.mean())
    if what == "median":
        return float(np.median(pixels))
    if what == "max":
        return float(pixels.max())
    cut = _star_box(pixels, box)
    if what == "star_signal":
        return float(cut.sum())
    peak = float(cut.max())
    if peak <= 0:
        return math.inf
    return 2.3548 * math.sqrt(max(float(cut.sum()), 0.0) / (2.0 * math.pi * peak))


@step_kind
class ImageCheck(DeviceStep, Check):
    """A figure of the camera's latest image (ImageArray) within ``min``..``max``; retried with
    ``within_s`` (e.g. until the exposure is ready)."""

    do: Literal["expect_image"]
    measure: Literal[MEASURES] = Field(..., description="mean, median, max, star_fwhm or star_signal")  # type: ignore[valid-type]
    min: float | None = Field(None, description="The figure is at least this")
    max: float | None = Field(None, description="The figure is at most this")
    box: int = Field(20, ge=2, le=500, description="Half size of the brightest star's box (star_fwhm, star_signal)")

    @model_validator(mode="after")
    def _bounded(self) -> "ImageCheck":
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        return self

    def describe(self) -> str:
        bounds = " and ".join(x for x in (f">= {self.min:g}" if self.min is not None else "", f"<= {self.max:g}" if self.max is not None else "") if x)
        return f"expect_image {self.device} {self.measure} {bounds}"

    def check_refs(self, scope) -> None:  # type: ignore[no-untyped-def]
        spec = scope.device(self.device)
        if spec is not None and spec.type != "camera":
            scope.problem("device", f"{self.device!r} is a {spec.type}, not a camera")

    def evaluate(self, run: "Run") -> tuple[bool, str, str]:
        expected = self.describe().split(" ", 1)[1]
        try:
            pixels = np.asarray(run.device(self.device).get("ImageArray"))
        except Exception as exc:  # noqa: BLE001 - not ready yet, or the camera failed: both are observations
            return False, expected, f"no image: {describe_exception(exc)}"
        figure = measure(pixels, self.measure, self.box)
        ok = (self.min is None or figure >= self.min) and (self.max is None or figure <= self.max)
        return ok, expected, f"{self.measure} {figure:.4g} of a {'x'.join(map(str, pixels.shape))} frame"
