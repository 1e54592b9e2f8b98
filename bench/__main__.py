"""Run every benchmark with modest defaults (a few minutes): ``python -m bench``.

Each one prints its own figures and ratios as it goes; a summary of the headline figures
against the issue 6 targets follows at the end. Longer runs: ``python -m bench.<name> --help``.
``--only name,name`` runs a subset; ``--quick`` shortens everything further (a smoke run).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from typing import Any

from bench.harness import machine, verdict_text

# name -> (modest arguments, quick arguments)
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    # startup first: it measures fork children of a process that has not imported alpyca yet
    "startup": (["--rounds", "5", "--group-rounds", "2"], ["--rounds", "2", "--group-rounds", "1", "--methods", "spawn,fork"]),
    "device_calls": (["--calls", "100", "--rounds", "11"], ["--calls", "30", "--rounds", "3"]),
    "ipc_breakdown": (["--calls", "300"], ["--calls", "50"]),
    "server_cpu": (["--requests", "1500", "--rounds", "5"], ["--requests", "300", "--rounds", "2"]),
    "images": (["--rounds", "7", "--big-rounds", "1"], ["--rounds", "2", "--big", "2048", "--big-rounds", "1"]),
    "polling": (["--duration", "20", "--rounds", "2"], ["--duration", "6", "--rounds", "2"]),
    "fault_timing": (["--requests", "15", "--rounds", "4"], ["--requests", "5", "--rounds", "2"]),
    "render": (["--rounds", "5", "--answers-rounds", "3"], ["--rounds", "2", "--sizes", "2048", "--answers-size", "2048", "--answers-rounds", "1"]),
}


def _summary(results: dict[str, Any]) -> list[str]:
    """One line per target: figure, baseline, verdict."""
    lines = []

    def line(what: str, figure: str, ok: bool | None) -> None:
        lines.append(f"  {what:<58} {figure:<40} {'' if ok is None else verdict_text(ok)}")

    r = results.get("device_calls") or {}
    for case in ("get Position", "set TempComp", "call Halt()"):
        if case in r:
            c = r[case]
            line(f"AlpacaDevice {case} vs direct alpyca (<= 1.15)",
                 f"{c['ratio']:.3f} ({c['AlpacaDevice us']:.0f} vs {c['direct us']:.0f} us)", c["ratio"] <= 1.15)
    r = results.get("ipc_breakdown") or {}
    if r:
        handoffs = r["listener -> worker thread starts"] + r["reader -> calling thread returns"]
        line("  wrapper time outside the HTTP call (stage medians)",
             f"{r['total AlpacaDevice.get'] - r['HTTP call (alpyca, in the child)']:.0f} us, thread handoffs {handoffs:.0f} us", None)
    r = results.get("server_cpu") or {}
    if r:
        line("server CPU/GET vs bare Falcon+waitress, no rules (<= 1.3)", f"{r['no rules ratio']:.3f} ({r['no rules us']:.0f} vs {r['bare us']:.0f} us)", r["no rules ratio"] <= 1.3)
        line("  ... 100 non-matching rules (<= 1.4)", f"{r['rules ratio']:.3f} ({r['rules us']:.0f} us)", r["rules ratio"] <= 1.4)
        line("  fault layer, no rule, vs the app without it (nothing measurable)", f"{r['fault layer ratio']:.3f}", None)
    r = results.get("startup") or {}
    for key, label, limit in (("start spawn ms", "start+first get, spawn (<= 300 ms)", 300), ("start fork ms", "start+first get, fork (<= 30 ms)", 30),
                              ("start forkserver ms", "start+first get, forkserver (no target)", None),
                              ("start fork pre-imported ms", "  ... fork, alpyca imported in the parent first", 30)):
        if key in r:
            med = r[key]["median"]
            base = r[key].get("baseline")
            line(label, f"{med:.0f} ms" + (f" (bare Process {base:.0f} ms)" if base is not None else ""), None if limit is None else med <= limit)
    for key in [k for k in r if k.endswith("devices spawn ms") or k.endswith("devices fork ms") or k.endswith("devices forkserver ms")]:
        line(f"{key.replace(' ms', '')} started at once, all answering (<= 3 s)", f"worst {r[key]['worst']:.0f} ms (bare {r[key]['baseline']:.0f} ms)", r[key]["worst"] <= 3000)
    if "idle RSS MiB" in r:
        m = r["idle RSS MiB"]
        line("idle device process RSS (<= 40 MB)", f"{m['median'] * 1.048576:.1f} MB (bare alpyca {m['baseline'] * 1.048576:.1f} MB)", m["median"] * 1.048576 <= 40)
    r = results.get("images") or {}
    if "timing" in r:
        t = r["timing"]
        line("1024x1024 ImageArray, AlpacaDevice vs direct (<= 1.5)", f"{t['ratio']:.3f} ({t['AlpacaDevice ms']:.1f} vs {t['direct ms']:.1f} ms)", t["ratio"] <= 1.5)
    if "memory" in r:
        m = r["memory"]
        line("big frame, peak extra RSS in frames (caller / device process)",
             f"{m['AlpacaDevice caller: peak - before']:.1f} / {m['AlpacaDevice device process: peak - before']:.1f} (direct {m['direct alpyca: peak - before']:.1f})", None)
    r = results.get("polling") or {}
    if "AlpacaDevice" in r:
        k = r["AlpacaDevice"]
        line("polling: missed polls (0)", f"{k['missed']:.0f} (direct baseline {r['baseline']['missed']:.0f})", k["missed"] == 0)
        line("polling: p99 interval error (< 50 ms)", f"{k['p99 error ms']:.1f} ms (direct {r['baseline']['p99 error ms']:.1f} ms)", k["p99 error ms"] < 50)
        line("polling: poll_latest p99 (< 2 ms)", f"{k['latest p99 us'] / 1e3:.3f} ms", k["latest p99 us"] < 2000)
        line("polling: emulator CPU (< 1 core)", f"{k['emulator cores']:.3f} cores", k["emulator cores"] < 1)
    r = results.get("fault_timing") or {}
    if r:
        line("300 ms latency rule at the client: median within 10 ms", f"{r['median ms']:.1f} ms (no rule {r['baseline median ms']:.1f} ms)", abs(r["median ms"] - r["target"]) <= 10)
        line("  ... p99 within 30 ms", f"{r['p99 ms']:.1f} ms (emulator's own p99 {r['server p99 ms']:.1f} ms)", abs(r["p99 ms"] - r["target"]) <= 30)
    r = results.get("render") or {}
    for size, limit in ((2048, 150), (4096, 600)):
        if f"{size} time" in r:
            t = r[f"{size} time"]
            line(f"{size}x{size} sky render (<= {limit} ms)", f"{t['sky ms']:.0f} ms (numpy noise draw {t['numpy ms']:.0f}, old {t['old ms']:.0f})", t["sky ms"] <= limit)
            line(f"  ... peak memory (<= 3 frames)", f"{r[f'{size} memory frames']:.2f} frames", r[f"{size} memory frames"] <= 3)
    if "answers" in r:
        a = r["answers"]
        line("other devices while a frame renders (median < 5 ms)", f"{a['busy ms']:.2f} ms (idle {a['idle ms']:.2f} ms)", a["busy ms"] < 5)
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    ap.add_argument("--quick", action="store_true", help="a short smoke run, figures only indicative")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.only.split(",")] if args.only else list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    results: dict[str, Any] = {}
    t0 = time.monotonic()
    for name in names:
        bench_args = BENCHMARKS[name][1 if args.quick else 0]
        print(f"\n######## python -m bench.{name} {' '.join(bench_args)}", flush=True)
        try:
            results[name] = importlib.import_module(f"bench.{name}").main(bench_args)
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            print(f"!! bench.{name} failed: {type(exc).__name__}: {exc}", flush=True)
        sys.stdout.flush()
    print(f"\n######## summary ({time.monotonic() - t0:.0f} s{', quick run' if args.quick else ''}; polling ran "
          f"{'6' if args.quick else '20'} s per side, not the 60 s of the target)")
    print(machine())
    for line in _summary(results):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
