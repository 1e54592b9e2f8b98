"""Polling at scale: 20 devices x 5 members at 2 Hz against one emulator.

Targets (issue 6): no missed interval, p99 interval error < 50 ms, ``poll_latest`` p99 < 2 ms,
emulator CPU below one core.

Two sides, interleaved in rounds of ``duration / rounds`` seconds each (A B A B):
* AlpacaDevice: one device process per focuser, ``start_poll`` on 5 members; between its
  rounds the polls are paused (``pause_polls``) while the baseline runs, so the two sides
  never load the emulator at the same time. A sampler thread calls ``poll_latest()`` of one
  device after another every 5 ms and times each call.
* baseline: the same 100 polls from threads of this one process with direct alpyca objects,
  scheduled the same way (fixed rate, a late read is never made up with a burst), and the
  same sampler reading a latest-value dict under a lock.
Intervals are measured between consecutive readings of one member, by the time each reading
returned (the ``datetime`` the device process stamps on the queued value), within one round,
ignoring the first 0.5 s after a round starts. An interval longer than 1.5 polls counts the
polls it skipped as missed.

    python -m bench.polling [--duration 60] [--rounds 2] [--devices 20] [--rate 2]
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file (python bench/<name>.py): make ``bench`` importable
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import argparse
import json
import multiprocessing
import threading
import time
import urllib.request
from collections import defaultdict
from typing import Any, Callable

from bench.harness import machine, percentile, verdict_text
from bench.procs import EmulatorProcess, cpu_seconds
from astra.queues import QueueDrain

MEMBERS = ("Position", "IsMoving", "Temperature", "TempComp", "MaxStep")
SETTLE_S = 0.5


def _focusers(n: int) -> str:
    return "".join(f'[[devices]]\ntype = "focuser"\nnumber = {i}\nconnect_delay_s = 0\n\n' for i in range(n))


class Side:
    """What one side measured: reading times per member, sampler latencies, CPU, wall windows."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.readings: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.latest_us: list[float] = []
        self.windows: list[tuple[float, float]] = []
        self.emulator_cpu_s = 0.0
        self.caller_cpu_s = 0.0
        self.children_cpu_s = 0.0
        self.wall_s = 0.0

    def add(self, key: tuple[str, str], t: float) -> None:
        self.readings[key].append(t)

    def stats(self, delay: float) -> dict[str, float]:
        errors: list[float] = []
        missed = 0
        expected = 0.0
        for times in self.readings.values():
            times = sorted(times)
            for start, end in self.windows:
                inside = [t for t in times if start + SETTLE_S <= t <= end]
                for a, b in zip(inside, inside[1:]):
                    interval = b - a
                    errors.append(abs(interval - delay))
                    if interval > 1.5 * delay:
                        missed += round(interval / delay) - 1
        for start, end in self.windows:
            expected += (end - start - SETTLE_S) / delay * len(self.readings)
        return {
            "intervals": len(errors),
            "expected intervals": expected,
            "missed": missed,
            "p50 error ms": percentile(errors, 50) * 1e3,
            "p99 error ms": percentile(errors, 99) * 1e3,
            "max error ms": max(errors, default=float("nan")) * 1e3,
            "latest p50 us": percentile(self.latest_us, 50),
            "latest p99 us": percentile(self.latest_us, 99),
            "latest max us": max(self.latest_us, default=float("nan")),
            "emulator cores": self.emulator_cpu_s / self.wall_s if self.wall_s else float("nan"),
            "caller cores": self.caller_cpu_s / self.wall_s if self.wall_s else float("nan"),
            "device processes cores": self.children_cpu_s / self.wall_s if self.wall_s else float("nan"),
        }


def server_view(url: str, since: float, until: float, delay: float) -> dict[str, float]:
    """The emulator's traffic log for one round: arrival-interval error per member and handling time.

    Arrivals are stamped when the emulator starts handling a request, before any answer: a late
    arrival means the poll left late (device process not scheduled) or waited in the server's
    accept/queue, not a slow answer; ``handling`` is the server's time to the answer.
    """
    with urllib.request.urlopen(f"{url}/emulator/v1/traffic?since={since}", timeout=30) as r:
        entries = json.loads(r.read())
    arrivals: dict[tuple[Any, Any], list[float]] = defaultdict(list)
    handling = []
    for e in entries:
        if e.get("device_type") == "focuser" and since + SETTLE_S <= e["time"] <= until:
            arrivals[(e["device_number"], e["member"])].append(e["time"])
            handling.append(e["duration_s"])
    errors = []
    for times in arrivals.values():
        times.sort()
        errors += [abs(b - a - delay) for a, b in zip(times, times[1:])]
    # Bunching: the share of all arrivals in the busiest 50 ms of the poll cycle (uniform: 50/delay).
    phases = sorted(t % delay for times in arrivals.values() for t in times)
    wrapped = phases + [p + delay for p in phases]
    busiest, j = 0, 0
    for i, p in enumerate(phases):
        while j < len(wrapped) and wrapped[j] <= p + 0.05:
            j += 1
        busiest = max(busiest, j - i)
    return {"arrival p99 ms": percentile(errors, 99) * 1e3, "handling p99 ms": percentile(handling, 99) * 1e3,
            "handling max ms": max(handling, default=float("nan")) * 1e3, "requests": len(handling),
            "busiest 50 ms share": busiest / len(phases) if phases else float("nan")}


def _sampler(stop: threading.Event, calls: list[Callable[[], Any]], out: list[float], period: float = 0.005) -> None:
    i = 0
    while not stop.wait(period):
        fn = calls[i % len(calls)]
        i += 1
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e6)


def _timed_round(side: Side, emulator_pid: int, seconds: float, sampler_calls: list[Callable[[], Any]],
                 child_pids: list[int]) -> None:
    stop = threading.Event()
    sampler = threading.Thread(target=_sampler, args=(stop, sampler_calls, side.latest_us), name="bench-sampler", daemon=True)
    emu0, me0 = cpu_seconds(emulator_pid), time.process_time()
    kids0 = sum(cpu_seconds(p) for p in child_pids)
    start = time.time()
    sampler.start()
    time.sleep(seconds)
    end = time.time()
    stop.set()
    sampler.join(5)
    side.emulator_cpu_s += cpu_seconds(emulator_pid) - emu0
    side.caller_cpu_s += time.process_time() - me0
    side.children_cpu_s += sum(cpu_seconds(p) for p in child_pids) - kids0
    side.wall_s += end - start
    side.windows.append((start, end))


class DirectPollers:
    """The baseline: one thread per member with direct alpyca objects, paused between rounds."""

    def __init__(self, address: str, devices: int, delay: float, side: Side) -> None:
        from alpaca.focuser import Focuser

        self.delay = delay
        self.side = side
        self.latest: dict[tuple[str, str], Any] = {}
        self.lock = threading.Lock()
        self.running = threading.Event()
        self.stop = threading.Event()
        self.threads = []
        for n in range(devices):
            dev = Focuser(address, n)
            dev.Connected = True
            for member in MEMBERS:
                t = threading.Thread(target=self._loop, args=(dev, f"focuser {n}", member), daemon=True)
                self.threads.append(t)
        for t in self.threads:
            t.start()

    def _loop(self, dev: Any, name: str, member: str) -> None:
        next_at = time.monotonic()
        while not self.stop.is_set():
            if not self.running.is_set():
                self.running.wait(0.2)
                next_at = time.monotonic()
                continue
            remaining = next_at - time.monotonic()
            if remaining > 0 and self.stop.wait(remaining):
                return
            try:
                value = getattr(dev, member)
            except Exception:
                next_at = time.monotonic() + self.delay
                continue
            with self.lock:
                self.latest[(name, member)] = value
            self.side.add((name, member), time.time())
            next_at += self.delay
            if next_at < time.monotonic():
                next_at = time.monotonic()

    def read_latest(self) -> dict:
        with self.lock:
            return dict(self.latest)

    def close(self) -> None:
        self.stop.set()
        self.running.set()
        for t in self.threads:
            t.join(10)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of polling per side, split into rounds")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--devices", type=int, default=20)
    ap.add_argument("--rate", type=float, default=2.0, help="polls per second per member")
    ap.add_argument("--start-method", default="spawn", choices=("spawn", "fork", "forkserver"))
    args = ap.parse_args(argv)
    from astra.alpaca_device_process import AlpacaDevice

    delay = 1.0 / args.rate
    per_round = args.duration / args.rounds
    print(machine())
    print(f"{args.devices} devices x {len(MEMBERS)} members at {args.rate:g} Hz, {args.duration:g} s per side "
          f"in {args.rounds} rounds of {per_round:g} s, start method {args.start_method}")
    kit, base = Side("AlpacaDevice"), Side("direct alpyca threads, one process")
    with EmulatorProcess(_focusers(args.devices)) as server:
        ctx = multiprocessing.get_context(args.start_method)
        q = ctx.Queue()
        def collect(item: Any) -> None:
            meta, payload = item
            if payload.get("type") == "query":
                kit.add((meta["device_name"], payload["method"]), payload["datetime"].timestamp())

        collector = QueueDrain(q, collect, poll_s=0.2, name="bench-collector").start()
        devs = [AlpacaDevice(server.address, "Focuser", n, f"focuser {n}", q, start_method=args.start_method)
                for n in range(args.devices)]
        t0 = time.perf_counter()
        for d in devs:
            d.start()
        for d in devs:
            d.get("Position")
        print(f"{args.devices} device processes answering after {time.perf_counter() - t0:.1f} s")
        direct = None
        views: list[dict[str, float]] = []
        try:
            for d in devs:
                for member in MEMBERS:
                    d.start_poll(member, delay)
                d.pause_polls()
            direct = DirectPollers(server.address, args.devices, delay, base)
            pids = [d.pid for d in devs]
            for r in range(args.rounds):
                for which in (("kit", "base") if r % 2 == 0 else ("base", "kit")):
                    if which == "kit":
                        for d in devs:
                            d.resume_polls()
                        _timed_round(kit, server.pid, per_round, [d.poll_latest for d in devs], pids)
                        for d in devs:
                            d.pause_polls()
                        start, end = kit.windows[-1]
                        views.append(server_view(server.url, start, end, delay))
                    else:
                        direct.running.set()
                        _timed_round(base, server.pid, per_round, [direct.read_latest], [])
                        direct.running.clear()
                    time.sleep(1.0)  # let in-flight reads land before the other side starts
        finally:
            if direct is not None:
                direct.close()
            stoppers = [threading.Thread(target=d.stop, daemon=True) for d in devs]
            for t in stoppers:
                t.start()
            for t in stoppers:
                t.join(20)
            collector.stop(5)
            q.close()
    results = {}
    print()
    rows = [
        ("intervals", "measured intervals", "{:.0f}"),
        ("expected intervals", "expected intervals", "{:.0f}"),
        ("missed", "missed polls", "{:.0f}"),
        ("p50 error ms", "interval error p50 (ms)", "{:.1f}"),
        ("p99 error ms", "interval error p99 (ms)", "{:.1f}"),
        ("max error ms", "interval error max (ms)", "{:.1f}"),
        ("latest p50 us", "poll_latest p50 (us)", "{:.1f}"),
        ("latest p99 us", "poll_latest p99 (us)", "{:.1f}"),
        ("latest max us", "poll_latest max (us)", "{:.1f}"),
        ("emulator cores", "emulator CPU (cores)", "{:.3f}"),
        ("caller cores", "caller process CPU (cores)", "{:.3f}"),
        ("device processes cores", "device processes CPU (cores, sum)", "{:.3f}"),
    ]
    ks, bs = kit.stats(delay), base.stats(delay)
    print(f"{'':<36}{kit.name:>18}{'direct (baseline)':>22}   ratio")
    for key, label, fmt in rows:
        ratio = ks[key] / bs[key] if bs[key] else float("nan")
        print(f"{label:<36}{fmt.format(ks[key]):>18}{fmt.format(bs[key]):>22}   {ratio:.2f}")
    for i, v in enumerate(views):
        print(f"emulator's view of AlpacaDevice round {i + 1}: {v['requests']} requests, arrival-interval error p99 "
              f"{v['arrival p99 ms']:.1f} ms, handling p99 {v['handling p99 ms']:.2f} ms (max {v['handling max ms']:.1f} ms), "
              f"{100 * v['busiest 50 ms share']:.0f}% of arrivals in the busiest 50 ms of the cycle "
              f"(spread evenly: {100 * 0.05 / delay:.0f}%)")
    print("\ntargets (AlpacaDevice side):")
    print(f"  no missed interval: {ks['missed']:.0f} missed -> {verdict_text(ks['missed'] == 0)}")
    print(f"  p99 interval error < 50 ms: {ks['p99 error ms']:.1f} ms -> {verdict_text(ks['p99 error ms'] < 50)}")
    print(f"  poll_latest p99 < 2 ms: {ks['latest p99 us'] / 1e3:.3f} ms -> {verdict_text(ks['latest p99 us'] < 2000)}")
    print(f"  emulator CPU < 1 core: {ks['emulator cores']:.3f} -> {verdict_text(ks['emulator cores'] < 1)}")
    results["AlpacaDevice"] = ks
    results["server view"] = views
    results["baseline"] = bs
    return results


if __name__ == "__main__":
    main()
