"""Images through the device process: time for 1024 x 1024, memory (copies) for 4096 x 4096.

Targets (issue 6): a 1024 x 1024 UInt16 frame through ``AlpacaDevice.get("ImageArray")`` within
1.5x of a direct alpyca ``ImageArray`` read (alpyca asks for ImageBytes); a 4096 x 4096 frame
through the device process without copying the pixel data more than needed.

Timing rounds interleave direct and wrapped reads of the same finished exposure. The memory
figures come from fresh worker processes (one per read, so nothing earlier inflates the peak):
peak RSS (VmHWM / ru_maxrss) minus RSS just before the read, in units of the frame's size on
the wire (width x height x 2 bytes for UInt16). The baseline is a direct alpyca read in one
fresh process. Camera sizes come from a TOML config (``[[devices]] type = "camera"``).

    python -m bench.images [--rounds 9] [--reads 3] [--big 4096] [--big-rounds 2]
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file (python bench/<name>.py): make ``bench`` importable
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import argparse
import json
import multiprocessing
import resource
import subprocess
import sys
import time
from typing import Any

from bench.harness import Series, interleave, machine, report
from bench.procs import ROOT, EmulatorProcess, QueueDrainer, status_kb


def camera_config(size: int) -> str:
    return (
        '[[devices]]\ntype = "camera"\n'
        f"width = {size}\nheight = {size}\nreadout_time_s = 0\nconnect_delay_s = 0\n"
    )


def expose(address: str, timeout: float = 60.0) -> None:
    """Take a short light frame and wait until ImageReady (deadline ``timeout`` s)."""
    from alpaca.camera import Camera

    cam = Camera(address, 0)
    cam.Connected = True
    cam.StartExposure(0.01, True)
    deadline = time.monotonic() + timeout
    while not cam.ImageReady:
        if time.monotonic() > deadline:
            raise RuntimeError("the emulated camera did not finish its exposure")
        time.sleep(0.02)


def _read_ms(fn: Any, reads: int) -> float:
    times = []
    for _ in range(reads):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return times[len(times) // 2]


def _frame_ok(image: Any, size: int) -> None:
    if len(image) != size or len(image[0]) != size:
        raise RuntimeError(f"unexpected image shape {len(image)} x {len(image[0])}")


def timing(size: int, rounds: int, reads: int, start_method: str) -> dict[str, Any]:
    from alpaca.camera import Camera

    from astra.alpaca_device_process import AlpacaDevice

    with EmulatorProcess(camera_config(size)) as server:
        expose(server.address)
        direct = Camera(server.address, 0)
        image = direct.ImageArray
        _frame_ok(image, size)
        desc = direct.img_desc
        print(f"\n{size} x {size} frame: ImageBytes element type {desc.ImageElementType}, "
              f"transmitted as type {desc.TransmissionElementType} (8 = UInt16), rank {desc.Rank}")
        drainer = QueueDrainer(multiprocessing.get_context(start_method).Queue())
        dev = AlpacaDevice(server.address, "Camera", 0, "bench camera", drainer.queue, start_method=start_method)
        dev.start()
        try:
            _frame_ok(dev.get("ImageArray"), size)
            series = interleave(
                rounds,
                {
                    "direct alpyca ImageArray": lambda: _read_ms(lambda: direct.ImageArray, reads),
                    "AlpacaDevice.get(ImageArray)": lambda: _read_ms(lambda: dev.get("ImageArray"), reads),
                },
                "ms",
            )
            ratio = report(f"{size} x {size} UInt16 ImageArray: AlpacaDevice vs direct alpyca", series,
                           "direct alpyca ImageArray", 1.5)["AlpacaDevice.get(ImageArray)"]
        finally:
            dev.stop()
            drainer.close()
    return {"direct ms": series["direct alpyca ImageArray"].median,
            "AlpacaDevice ms": series["AlpacaDevice.get(ImageArray)"].median, "ratio": ratio, "target": 1.5}


# -- memory: one fresh worker process per read ------------------------------------------------------


def _worker(address: str, mode: str, size: int) -> dict[str, float]:
    """Read the frame once (``direct`` or ``device``) and report memory before and at the peak, KiB."""
    out: dict[str, float] = {}
    if mode == "direct":
        from alpaca.camera import Camera

        cam = Camera(address, 0)
        cam.Connected = True
        out["self before"] = status_kb_self("VmRSS")
        image = cam.ImageArray
        _frame_ok(image, size)
        out["self after"] = status_kb_self("VmRSS")
        out["self peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return out
    from astra.alpaca_device_process import AlpacaDevice

    dev = AlpacaDevice(address, "Camera", 0, "memory camera", None, start_method="spawn")
    dev.start()
    try:
        dev.get("Connected")
        time.sleep(0.3)
        out["self before"] = status_kb_self("VmRSS")
        out["child before"] = status_kb(dev.pid, "VmRSS")
        image = dev.call("ImageArray", timeout=120)
        _frame_ok(image, size)
        out["self after"] = status_kb_self("VmRSS")
        out["self peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out["child after"] = status_kb(dev.pid, "VmRSS")
        out["child peak"] = status_kb(dev.pid, "VmHWM")
    finally:
        dev.stop()
    return out


def status_kb_self(key: str) -> int:
    import os

    return status_kb(os.getpid(), key)


def memory(size: int, rounds: int) -> dict[str, Any]:
    frame_kb = size * size * 2 / 1024
    with EmulatorProcess(camera_config(size)) as server:
        expose(server.address, timeout=120)
        from alpaca.camera import Camera

        Camera(server.address, 0).ImageArrayRaw  # the emulator renders and caches the frame now, not in a worker
        figures: dict[str, Series] = {}
        for i in range(rounds):
            for mode in (("direct", "device") if i % 2 == 0 else ("device", "direct")):
                proc = subprocess.run(
                    [sys.executable, "-m", "bench.images", "--worker", mode, "--address", server.address, "--big", str(size)],
                    capture_output=True, text=True, timeout=300, cwd=ROOT,
                )
                if proc.returncode != 0:
                    raise RuntimeError(f"memory worker {mode} failed:\n{proc.stderr[-2000:]}")
                out = json.loads(proc.stdout.strip().splitlines()[-1])
                prefix = "direct alpyca" if mode == "direct" else "AlpacaDevice"
                whos = ("self",) if mode == "direct" else ("self", "child")
                for who in whos:
                    name = f"{prefix}{'' if mode == 'direct' else (' caller' if who == 'self' else ' device process')}"
                    figures.setdefault(f"{name}: peak - before", Series(f"{name}: peak - before", "frames")).values.append(
                        (out[f"{who} peak"] - out[f"{who} before"]) / frame_kb)
                    figures.setdefault(f"{name}: after - before", Series(f"{name}: after - before", "frames")).values.append(
                        (out[f"{who} after"] - out[f"{who} before"]) / frame_kb)
                    figures.setdefault(f"{name}: peak RSS", Series(f"{name}: peak RSS", "MiB")).values.append(out[f"{who} peak"] / 1024)
    print(f"\n== {size} x {size} UInt16 frame ({frame_kb / 1024:.0f} MiB on the wire): memory in fresh processes")
    print("(1 frame = the pixel data once; 'after - before' is what stays referenced: the returned image)")
    for s in figures.values():
        print(s.describe())
    med = {k: s.median for k, s in figures.items()}
    both = med["AlpacaDevice caller: peak - before"] + med["AlpacaDevice device process: peak - before"]
    print(f"{'':<44} device path, caller + device process peaks: {both:.1f} frames "
          f"vs {med['direct alpyca: peak - before']:.1f} for a direct read "
          f"(ratio {both / med['direct alpyca: peak - before']:.2f})")
    return med


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1024, help="frame side for the timing comparison")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--reads", type=int, default=3, help="reads per round and side (the round's figure is their median)")
    ap.add_argument("--big", type=int, default=4096, help="frame side for the memory measurement (0: skip)")
    ap.add_argument("--big-rounds", type=int, default=2)
    ap.add_argument("--start-method", default="spawn", choices=("spawn", "fork", "forkserver"))
    ap.add_argument("--worker", choices=("direct", "device"), help=argparse.SUPPRESS)
    ap.add_argument("--address", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.address, args.worker, args.big)))
        return {}
    print(machine())
    results = {"timing": timing(args.size, args.rounds, args.reads, args.start_method)}
    if args.big:
        results["memory"] = memory(args.big, args.big_rounds)
    return results


if __name__ == "__main__":
    main()
