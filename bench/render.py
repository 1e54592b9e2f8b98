"""The camera's sky render: time per frame, peak memory, and other devices' answers while it runs.

Targets (issue 11): a 2048 x 2048 frame of the sky through the optical train rendered in
<= 150 ms, 4096 x 4096 in <= 600 ms, peak memory <= 3 frames (Int32 output frames), and other
devices answering within 5 ms median while a frame renders.

Time: rounds interleave, for each size, (1) the sky render (``scene.sky_image`` for a tracked
night exposure at RA 5.5 h, Dec +20, the default 1 m / 3.76 um train, then ``images.render_sky``),
(2) today's fixed-field generator ``images.render_frame`` on the same frame (150 stars, the
camera's default) and (3) numpy's own full-frame operation: one float32 ``standard_normal`` draw
of the frame. Memory: tracemalloc's peak over one render (numpy reports its buffers to it), in
units of the Int32 frame. Answers: an emulator in its own process serves a full observatory with a
4096 x 4096 camera; a thread fetches ImageArray as ImageBytes after fresh exposures (each fetch
renders, then sends the frame; the bytes are not decoded, so this process's GIL stays free) while the main thread reads Focuser.Position; those read times are compared
with the same reads with no image in flight.

    python -m bench.render [--rounds 7] [--sizes 2048,4096] [--answers-rounds 3]
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file (python bench/<name>.py): make ``bench`` importable
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import argparse
import statistics
import threading
import time
import tracemalloc
from datetime import datetime, timezone
from typing import Any, Callable

import numpy as np

from bench.harness import interleave, machine, percentile, report, verdict_text
from bench.procs import EmulatorProcess
from emulator.sim import images, scene, sky
from emulator.sim.optics import TrainState

TARGET_MS = {2048: 150.0, 4096: 600.0}
#: The fetch asks for ImageBytes and discards them: decoding them (as alpyca does) in this process
#: would hold this process's GIL and slow the reads measured beside it, which is not the emulator.
IMAGEBYTES = {"Accept": "application/imagebytes"}


def night_train() -> TrainState:
    return TrainState(
        utc=datetime(2026, 1, 1, tzinfo=timezone.utc), ra_hours=5.5, dec_deg=20.0, alt_deg=60.0, az_deg=180.0,
        focal_length_m=1.0, aperture_m=0.2, aperture_area_m2=0.0276, rotator_deg=0.0, focus_error_steps=0.0,
        step_um=4.0, throughput=1.0, cover_open=True, dome_clear=True, lamp=0.0, seeing_arcsec=2.0,
        cloud_cover_pct=0.0, sky=sky.SkyState(-40.0, -10.0, 0.0, 21.0, "night"),
    )


def sky_render(size: int, exposure: int = 1) -> np.ndarray:
    train = night_train()
    image = scene.sky_image(train, train, seed=0, width=size, height=size, pixel_x_um=3.76, pixel_y_um=3.76,
                            zero_point=4e9, flat_rate=2e4, duration=10.0)
    spec = images.FrameSpec(0, 0, size, size, 1, 1, 10.0, True)
    return images.render_sky(image, spec, (0, 0, exposure), size)


def old_render(size: int, stars: images.StarField) -> np.ndarray:
    return images.render_frame(stars, images.FrameSpec(0, 0, size, size, 1, 1, 10.0, True), images.exposure_rng(0, 0, 1))


def _ms(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def timing(size: int, rounds: int) -> dict[str, float]:
    stars = images.make_star_field(0, 0, size, size, 150, 3.0, 20000.0)
    rng = np.random.default_rng(0)
    sky_render(size)  # warm: tiles generated and cached, as in a served camera after its first frame
    count = scene.sky_image(night_train(), night_train(), seed=0, width=size, height=size, pixel_x_um=3.76,
                            pixel_y_um=3.76, zero_point=4e9, flat_rate=2e4, duration=10.0).rate.size
    series = interleave(rounds, {
        "sky render (scene + render_sky)": lambda: _ms(lambda: sky_render(size)),
        "today's generator (render_frame)": lambda: _ms(lambda: old_render(size, stars)),
        "numpy standard_normal f32 frame": lambda: _ms(lambda: rng.standard_normal((size, size), dtype=np.float32)),
    }, "ms")
    print(f"\n{size} x {size}: {count} stars drawn")
    ratios = report(f"{size} x {size} render time", series, "numpy standard_normal f32 frame")
    med = series["sky render (scene + render_sky)"].median
    old = series["today's generator (render_frame)"].median
    print(f"{'':<44} sky render vs today's generator: {med / old:.3f}")
    if size in TARGET_MS:
        print(f"{'':<44} target <= {TARGET_MS[size]:.0f} ms: {verdict_text(med <= TARGET_MS[size])}")
    return {"sky ms": med, "old ms": old,
            "numpy ms": series["numpy standard_normal f32 frame"].median,
            "ratio to numpy": ratios["sky render (scene + render_sky)"], "stars": count}


def peak_frames(size: int) -> float:
    sky_render(size)
    tracemalloc.start()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    frame = sky_render(size, exposure=2)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    frames = (peak - before) / frame.nbytes
    print(f"{size} x {size}: peak memory during a render {frames:.2f} frames (Int32 frame {frame.nbytes / 2**20:.0f} MiB); "
          f"target <= 3: {verdict_text(frames <= 3.0)}")
    return frames


def _observatory(size: int) -> str:
    lines = ["[emulator]", "sunlight = false", "time_scale = 100"]
    devices = {
        "camera": f"width = {size}\nheight = {size}\nreadout_time_s = 0",
        "telescope": "tracking = true", "covercalibrator": 'cover_initial = "open"',
        "dome": 'shutter_initial = "open"\ncan_set_azimuth = false', "focuser": "", "filterwheel": "",
        "observingconditions": "", "rotator": "", "safetymonitor": "", "switch": "",
    }
    for kind, options in devices.items():
        lines += ["[[devices]]", f'type = "{kind}"', "connected = true", "connect_delay_s = 0"] + ([options] if options else [])
    return "\n".join(lines) + "\n"


def answers(size: int, rounds: int) -> dict[str, float]:
    from alpaca.camera import Camera
    from alpaca.focuser import Focuser
    from alpaca.telescope import Telescope
    import requests

    with EmulatorProcess(_observatory(size)) as server:
        cam, foc, tel = Camera(server.address, 0), Focuser(server.address, 0), Telescope(server.address, 0)
        tel.SiteLongitude = ((5.5 - tel.SiderealTime) * 15.0 + 540.0) % 360.0 - 180.0
        tel.SlewToCoordinatesAsync(5.5, 40.0)
        deadline = time.monotonic() + 60
        while tel.Slewing and time.monotonic() < deadline:
            time.sleep(0.05)
        session = requests.Session()
        url = f"http://{server.address}/api/v1/camera/0/imagearray"
        idle: list[float] = []
        busy: list[float] = []
        fetch_ms: list[float] = []
        for _ in range(rounds):
            for _ in range(200):
                idle.append(_ms(lambda: foc.Position))
            cam.StartExposure(1.0, True)
            deadline = time.monotonic() + 60
            while not cam.ImageReady and time.monotonic() < deadline:
                time.sleep(0.01)
            done = threading.Event()

            def fetch() -> None:
                try:
                    fetch_ms.append(_ms(lambda: session.get(url, headers=IMAGEBYTES, timeout=120).content))
                finally:
                    done.set()

            worker = threading.Thread(target=fetch, daemon=True)
            worker.start()
            while not done.is_set():
                busy.append(_ms(lambda: foc.Position))
            worker.join(timeout=120)
    print(f"\n== other devices while a {size} x {size} frame renders and is sent (ImageArray as ImageBytes)")
    print(f"ImageArray fetch (render + encode + send): median {statistics.median(fetch_ms):.0f} ms over {len(fetch_ms)} frames")
    for name, values in (("Focuser.Position, no image in flight", idle), ("Focuser.Position, while an ImageArray runs", busy)):
        print(f"{name:<44} median {statistics.median(values):6.2f} ms  p90 {percentile(values, 90):6.2f} ms  ({len(values)} reads)")
    med = statistics.median(busy)
    print(f"{'':<44} ratio {med / statistics.median(idle):.2f}; target median < 5 ms: {verdict_text(med < 5.0)}")
    return {"idle ms": statistics.median(idle), "busy ms": med, "busy p90 ms": percentile(busy, 90), "fetch ms": statistics.median(fetch_ms)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--sizes", default="2048,4096", help="frame sides, comma-separated")
    ap.add_argument("--answers-size", type=int, default=4096, help="camera side for the answers measurement (0: skip)")
    ap.add_argument("--answers-rounds", type=int, default=3)
    args = ap.parse_args(argv)
    print(machine())
    results: dict[str, Any] = {}
    for size in (int(s) for s in args.sizes.split(",") if s.strip()):
        results[f"{size} time"] = timing(size, args.rounds)
        results[f"{size} memory frames"] = peak_frames(size)
    if args.answers_size:
        results["answers"] = answers(args.answers_size, args.answers_rounds)
    return results


if __name__ == "__main__":
    main()
