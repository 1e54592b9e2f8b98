"""How exactly a latency fault delays a request, seen from the client.

Target (issue 6): a 300 ms latency rule measured at the client within 10 ms of 300 ms
(median), p99 within 30 ms. The candidate is a direct alpyca read of a member that a latency
rule matches; the baseline is the same read with the rule removed (the rule is added and
deleted through the control API between rounds, so both sides share one emulator process and
interleave: A B A B). The "added" figure is the candidate minus the baseline median: the part
the rule itself is responsible for.

    python -m bench.fault_timing [--ms 300] [--requests 20] [--rounds 6]
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file (python bench/<name>.py): make ``bench`` importable
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import argparse
import json
import time
import urllib.request
from typing import Any

from bench.harness import Series, machine, percentile, verdict_text
from bench.procs import EmulatorProcess


def _control(url: str, method: str, path: str, doc: Any = None) -> Any:
    data = json.dumps(doc).encode() if doc is not None else None
    req = urllib.request.Request(f"{url}/emulator/v1/{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ms", type=float, default=300.0, help="the rule's latency")
    ap.add_argument("--requests", type=int, default=20, help="requests per round and side")
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args(argv)
    from alpaca.focuser import Focuser

    print(machine())
    rule = {"name": "bench latency", "match": {"device_type": "focuser", "device_number": 0, "member": "position"},
            "action": {"kind": "latency", "ms": args.ms}}
    with_rule, without = Series(f"with a {args.ms:g} ms latency rule", "ms"), Series("without the rule", "ms")
    samples_with: list[float] = []
    samples_without: list[float] = []
    with EmulatorProcess('[[devices]]\ntype = "focuser"\nconnect_delay_s = 0\n') as server:
        dev = Focuser(server.address, 0)
        dev.Connected = True
        for _ in range(20):
            dev.Position

        def run(n: int, out: list[float]) -> float:
            times = []
            for _ in range(n):
                t0 = time.perf_counter()
                dev.Position
                times.append((time.perf_counter() - t0) * 1e3)
            out.extend(times)
            return percentile(times, 50)

        for r in range(args.rounds):
            for side in (("with", "without") if r % 2 == 0 else ("without", "with")):
                if side == "with":
                    rule_id = _control(server.url, "POST", "faults", rule)["id"]
                    try:
                        with_rule.values.append(run(args.requests, samples_with))
                    finally:
                        _control(server.url, "DELETE", f"faults/{rule_id}")
                else:
                    without.values.append(run(args.requests, samples_without))
        # Where a tail comes from: the emulator's own view (request handed to a worker .. answer out).
        entries = _control(server.url, "GET", "traffic?member=position")
        server_with = [e["duration_s"] * 1e3 for e in entries if e.get("rules")]
        server_without = [e["duration_s"] * 1e3 for e in entries if not e.get("rules")]
    print(f"\n== latency rule of {args.ms:g} ms on focuser/0/position, direct alpyca reads, "
          f"{len(samples_with)} requests per side")
    for s in (with_rule, without):
        print(s.describe())
    base = percentile(samples_without, 50)
    med, p99 = percentile(samples_with, 50), percentile(samples_with, 99)
    added_med, added_p99 = med - base, p99 - base
    print(f"{'':<44} all requests with the rule: median {med:.1f} ms, p99 {p99:.1f} ms, max {max(samples_with):.1f} ms")
    print(f"{'':<44} without: median {base:.1f} ms, p99 {percentile(samples_without, 99):.1f} ms")
    print(f"{'':<44} added by the rule: median {added_med:+.1f} ms, p99 {added_p99:+.1f} ms "
          f"(ratio of medians {med / base:.1f})")
    if server_with:
        print(f"{'':<44} inside the emulator, with the rule: median {percentile(server_with, 50):.1f} ms, "
              f"p99 {percentile(server_with, 99):.1f} ms, max {max(server_with):.1f} ms "
              f"(without: median {percentile(server_without, 50):.2f} ms, p99 {percentile(server_without, 99):.2f} ms)")
    ok_med = abs(med - args.ms) <= 10
    ok_p99 = abs(p99 - args.ms) <= 30
    print(f"targets, as seen by the client: median within 10 ms of {args.ms:g}: {med - args.ms:+.1f} ms -> {verdict_text(ok_med)}; "
          f"p99 within 30 ms: {p99 - args.ms:+.1f} ms -> {verdict_text(ok_p99)}")
    return {"median ms": med, "p99 ms": p99, "baseline median ms": base, "added median ms": added_med,
            "added p99 ms": added_p99, "target": args.ms,
            "server p99 ms": percentile(server_with, 99) if server_with else float("nan")}


if __name__ == "__main__":
    main()
