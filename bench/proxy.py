"""Latency the fault proxy adds with no rules, against direct requests in the same run.

Target (issue 12): an alpyca read through ``alpaca-proxy`` <= 1.2x the same read made directly
to the emulator behind it. The emulator and the proxy each run in their own process (neither
shares the client's GIL, nor each other's); the client makes single reads of one member,
direct and through the proxy in turn, and a round's figure per side is the median of its
reads. Both sides keep their HTTP connections (alpyca's session; the proxy's pooled one).

    python -m bench.proxy [--calls 200] [--rounds 11] [--member position]
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file (python bench/<name>.py): make ``bench`` importable
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import argparse
import statistics
import time
from typing import Any, Callable

from bench.harness import Series, machine, report
from bench.procs import EmulatorProcess, ServerProcess

FOCUSER = '[[devices]]\ntype = "focuser"\nconnect_delay_s = 0\n'


def _alternated(n: int, direct: Callable[[], Any], proxied: Callable[[], Any]) -> tuple[float, float]:
    """Medians (us) of ``n`` direct and ``n`` proxied single reads, one of each in turn."""
    d_times, p_times = [], []
    for i in range(n):
        pair = ((direct, d_times), (proxied, p_times)) if i % 2 == 0 else ((proxied, p_times), (direct, d_times))
        for fn, out in pair:
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return statistics.median(d_times) * 1e6, statistics.median(p_times) * 1e6


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=200, help="reads per round and side")
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--member", default="Position", help="the focuser property read (default Position)")
    args = ap.parse_args(argv)
    from alpaca.focuser import Focuser

    print(machine())
    direct_s, proxied_s = Series("direct alpyca read", "us"), Series("the same read through alpaca-proxy", "us")
    with EmulatorProcess(FOCUSER) as emu, ServerProcess("-m", "proxy.cli", "--upstream", emu.address, "--port", "0",
                                                         "--no-discovery") as proxy:
        direct, proxied = Focuser(emu.address, 0), Focuser(proxy.address, 0)
        direct.Connected = True
        for dev in (direct, proxied):
            for _ in range(50):  # warm both paths (connections, caches)
                getattr(dev, args.member)
        for _ in range(args.rounds):
            d, p = _alternated(args.calls, lambda: getattr(direct, args.member), lambda: getattr(proxied, args.member))
            direct_s.values.append(d)
            proxied_s.values.append(p)
    ratios = report(f"Focuser.{args.member}: through the proxy (no rules) vs direct", {"direct": direct_s, "proxy": proxied_s},
                    "direct", target=1.2)
    print(f"added by the proxy: {proxied_s.median - direct_s.median:.0f} us per read (median)")
    return ratios


if __name__ == "__main__":
    main()
