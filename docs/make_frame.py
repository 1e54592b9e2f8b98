"""Make docs/frame.png: a 30 s frame of the emulated observatory, through alpyca, as PNG.

    python docs/make_frame.py
"""

from __future__ import annotations

import pathlib
import sys
import time

import numpy as np
from alpaca.camera import Camera
from alpaca.telescope import Telescope

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from emulator import Emulator  # noqa: E402
from emulator.http.png import encode_png, from_imagearray  # noqa: E402

RA, DEC = 5.1333, 23.5  # hours, degrees: a field with a few bright stars at seed 1

CONFIG = {
    "emulator": {"sunlight": False},
    "devices": [
        {"type": "camera", "width": 1024, "height": 768, "readout_time_s": 0, "connected": True},
        {"type": "telescope", "tracking": True, "connected": True},
        {"type": "covercalibrator", "cover_initial": "open"},
        {"type": "dome", "shutter_initial": "open", "can_set_azimuth": False},
        {"type": "focuser", "temperature_swing_c": 0.0},
        {"type": "filterwheel"},
        {"type": "observingconditions", "pinned": {"CloudCover": 0.0, "StarFWHM": 2.2}},
    ],
}


def display(picture: np.ndarray) -> np.ndarray:
    """A night-sky stretch to 8 bits: the background dark, faint stars lifted (asinh), bright ones white."""
    sky = float(np.median(picture))
    noise = float(np.std(picture[picture < np.percentile(picture, 90)]))
    x = np.clip((picture - (sky - 2 * noise)) / (15 * noise), 0, None)
    return np.clip(255 * np.arcsinh(x * 4) / np.arcsinh(40.0), 0, 255).astype(np.uint8)


def main() -> None:
    with Emulator(CONFIG, time_scale=100, seed=1) as emu:
        tel, cam = Telescope(emu.address, 0), Camera(emu.address, 0)
        tel.SiteLongitude = ((RA - tel.SiderealTime) * 15.0 + 540.0) % 360.0 - 180.0  # the field on the meridian
        tel.SlewToCoordinatesAsync(RA, DEC)
        while tel.Slewing:
            time.sleep(0.05)
        cam.StartExposure(30.0, True)
        while not cam.ImageReady:
            time.sleep(0.05)
        pixels = np.array(cam.ImageArray)
    out = pathlib.Path(__file__).with_name("frame.png")
    out.write_bytes(encode_png(display(from_imagearray(pixels)), stretch=False))
    print(f"{out}: {pixels.shape[0]} x {pixels.shape[1]}, ADU {pixels.min()}..{pixels.max()}")


if __name__ == "__main__":
    main()
