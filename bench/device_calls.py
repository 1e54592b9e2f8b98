"""AlpacaDevice calls through the pipe, against direct alpyca calls of the same members.

Target (issue 6): ratio <= 1.15 for a property get, a property set and a method call (the
original wrapper: about 1.5). The emulator runs in its own process so that neither client
shares its GIL; rounds interleave direct and wrapped calls.

    python -m bench.device_calls [--calls 500] [--rounds 7] [--start-method spawn]
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from urllib.parse import urlparse

from alpaca.focuser import Focuser

from astra.alpaca_device_process import AlpacaDevice
from bench.harness import interleave, report
from bench.procs import ServerProcess


def _timed(n: int, fn) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--start-method", default="spawn")
    args = ap.parse_args(argv)
    ratios: dict[str, float] = {}
    with ServerProcess("-m", "emulator.cli", "--port", "0", "--no-discovery") as server:
        address = urlparse(server.url).netloc
        direct = Focuser(address, 0)
        direct.Connected = True
        ctx = multiprocessing.get_context(args.start_method)
        queue = ctx.Queue()
        dev = AlpacaDevice(address, "Focuser", 0, "bench focuser", queue, start_method=args.start_method)
        dev.start()
        try:
            dev.get("Position")  # connected and warm
            n = args.calls
            cases = {
                "get Position": (lambda: direct.Position, lambda: dev.get("Position")),
                "set TempComp": (lambda: setattr(direct, "TempComp", False), lambda: dev.set("TempComp", False)),
                "call Halt()": (lambda: direct.Halt(), lambda: dev.get("Halt")),
            }
            for name, (d, w) in cases.items():
                series = interleave(
                    args.rounds,
                    {"direct alpyca": lambda d=d: _timed(n, d), "AlpacaDevice": lambda w=w: _timed(n, w)},
                    "us/call",
                )
                ratios[name] = report(f"{name}: AlpacaDevice vs direct alpyca", series, "direct alpyca", 1.15)["AlpacaDevice"]
        finally:
            dev.stop()
            while not queue.empty():
                queue.get_nowait()
            queue.close()
    return ratios


if __name__ == "__main__":
    main()
