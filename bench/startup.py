"""AlpacaDevice start-up time, 20 devices at once, and the memory of an idle device process.

Targets (issue 6): ``start()`` until the first ``get`` returns <= 300 ms under spawn and
<= 30 ms under fork (the figure includes the initial connect: InterfaceVersion, Connect,
Connecting, Connected); 20 devices started at once all answering within 3 s; resident memory of
one idle device process <= 40 MB.

Baselines, same start method, interleaved with the candidate round by round:
* one device: a bare ``multiprocessing.Process`` started, sent one message over a Pipe, and
  its echo received (the least any process-per-device design pays);
* 20 devices: 20 such bare processes started at once, until the last echo;
* memory: a bare spawned Python process that imported alpyca (``alpaca.focuser``).

Module-level imports stay light on purpose: a spawned child re-imports this module.

    python -m bench.startup [--rounds 7] [--group-rounds 3] [--devices 20] [--methods spawn,fork,forkserver]
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file (python bench/<name>.py): make ``bench`` importable
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import argparse
import multiprocessing
import threading
import time
from typing import Any

from bench.harness import Series, interleave, machine, report, verdict_text
from bench.procs import EmulatorProcess, QueueDrainer, pss_mb, rss_mb

TARGET_MS = {"spawn": 300.0, "fork": 30.0}


def _echo_child(conn: Any) -> None:
    conn.send(conn.recv())
    conn.close()


def _alpyca_child(conn: Any) -> None:
    import alpaca.focuser  # noqa: F401 - the point is its memory

    conn.send("ready")
    conn.recv()


def _focusers(n: int) -> str:
    # connect_delay_s = 0: the emulator's simulated Connecting time (0.2 s by default) is not the kit's.
    return "".join(f'[[devices]]\ntype = "focuser"\nnumber = {i}\nconnect_delay_s = 0\n\n' for i in range(n))


def bare_round_trip_ms(method: str, count: int = 1) -> float:
    """Start ``count`` bare processes at once; ms until every one has echoed one message."""
    ctx = multiprocessing.get_context(method)
    t0 = time.perf_counter()
    procs = []
    for _ in range(count):
        a, b = ctx.Pipe()
        p = ctx.Process(target=_echo_child, args=(b,), daemon=True)
        p.start()
        b.close()
        a.send(("get", 1, 0.0, {"method": "Position", "kwargs": {}}))
        procs.append((p, a))
    for p, a in procs:
        a.recv()
    elapsed = (time.perf_counter() - t0) * 1e3
    for p, a in procs:
        p.join(5)
        a.close()
    return elapsed


def device_start_ms(address: str, method: str, queue: Any, count: int = 1) -> float:
    """Start ``count`` AlpacaDevices at once (focusers 0..count-1); ms until every first get returned."""
    from astra.alpaca_device_process import AlpacaDevice

    devs = [AlpacaDevice(address, "Focuser", i, f"focuser {i}", queue, start_method=method) for i in range(count)]
    errors: list[BaseException] = []
    done = [0.0] * count

    def first_get(i: int) -> None:
        try:
            devs[i].get("Position")
            done[i] = time.perf_counter()
        except BaseException as exc:  # reported below
            errors.append(exc)

    t0 = time.perf_counter()
    try:
        if count == 1:
            devs[0].start()
            first_get(0)
        else:
            threads = []
            for i, dev in enumerate(devs):
                dev.start()
                t = threading.Thread(target=first_get, args=(i,), daemon=True)
                t.start()
                threads.append(t)
            for t in threads:
                t.join(60)
        if errors:
            raise RuntimeError(f"a device did not answer: {errors[0]!r}")
        return (max(done) - t0) * 1e3
    finally:
        stoppers = [threading.Thread(target=d.stop, daemon=True) for d in devs]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join(15)


def idle_memory(address: str, queue: Any, settle_s: float = 1.0) -> dict[str, float]:
    """VmRSS and PSS (MiB) of an idle spawned device process and of a bare spawned process that imported alpyca."""
    from astra.alpaca_device_process import AlpacaDevice

    ctx = multiprocessing.get_context("spawn")
    a, b = ctx.Pipe()
    bare = ctx.Process(target=_alpyca_child, args=(b,), daemon=True)
    bare.start()
    b.close()
    a.recv()
    dev = AlpacaDevice(address, "Focuser", 0, "idle focuser", queue, start_method="spawn")
    dev.start()
    try:
        dev.get("Position")
        time.sleep(settle_s)
        return {
            "device RSS": rss_mb(dev.pid),
            "device PSS": pss_mb(dev.pid),
            "bare alpyca RSS": rss_mb(bare.pid),
            "bare alpyca PSS": pss_mb(bare.pid),
        }
    finally:
        dev.stop()
        a.send(None)
        bare.join(5)
        a.close()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7, help="rounds of the one-device start-up, per start method")
    ap.add_argument("--group-rounds", type=int, default=3, help="rounds of the many-devices start-up")
    ap.add_argument("--devices", type=int, default=20)
    ap.add_argument("--methods", default="spawn,fork,forkserver", help="comma-separated start methods")
    args = ap.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    print(machine())
    import sys

    preloaded = "alpaca.focuser" in sys.modules
    print("this process has " + ("already" if preloaded else "not") + " imported alpyca: a fork child "
          + ("inherits it" if preloaded else "must import requests and alpyca itself (astra imports them lazily)"))
    results: dict[str, Any] = {}
    with EmulatorProcess(_focusers(args.devices)) as server:
        for method in methods:
            ctx = multiprocessing.get_context(method)
            drainer = QueueDrainer(ctx.Queue())
            try:
                device_start_ms(server.address, method, drainer.queue)  # warm caches and the emulator
                series = interleave(
                    args.rounds,
                    {
                        f"bare Process round trip ({method})": lambda m=method: bare_round_trip_ms(m),
                        f"AlpacaDevice start+first get ({method})": lambda m=method: device_start_ms(server.address, m, drainer.queue),
                    },
                    "ms",
                )
                report(f"start-up under {method}", series, f"bare Process round trip ({method})")
                median = series[f"AlpacaDevice start+first get ({method})"].median
                target = TARGET_MS.get(method)
                if target is not None:
                    print(f"{'':<44} target <= {target:.0f} ms: {verdict_text(median <= target)}")
                results[f"start {method} ms"] = {"median": median, "baseline": series[f"bare Process round trip ({method})"].median,
                                                 "target": target, "alpyca preloaded": preloaded}
                group = interleave(
                    args.group_rounds,
                    {
                        f"{args.devices} bare Processes ({method})": lambda m=method: bare_round_trip_ms(m, args.devices),
                        f"{args.devices} AlpacaDevices ({method})": lambda m=method: device_start_ms(server.address, m, drainer.queue, args.devices),
                    },
                    "ms",
                )
                report(f"{args.devices} devices started at once under {method}, until all answered", group, f"{args.devices} bare Processes ({method})")
                worst = max(group[f"{args.devices} AlpacaDevices ({method})"].values)
                print(f"{'':<44} slowest round {worst:.0f} ms; target all within 3000 ms: {verdict_text(worst <= 3000)}")
                results[f"{args.devices} devices {method} ms"] = {
                    "median": group[f"{args.devices} AlpacaDevices ({method})"].median, "worst": worst,
                    "baseline": group[f"{args.devices} bare Processes ({method})"].median, "target": 3000.0,
                }
            finally:
                drainer.close()
        if "fork" in methods and not preloaded:
            # What the fork child spends most of its start-up on: importing requests and alpyca,
            # which astra imports lazily in the child. With them imported in the parent first:
            import alpaca.focuser  # noqa: F401

            drainer = QueueDrainer(multiprocessing.get_context("fork").Queue())
            try:
                pre = Series("AlpacaDevice start+first get (fork, pre-imported)", "ms")
                for _ in range(args.rounds):
                    pre.values.append(device_start_ms(server.address, "fork", drainer.queue))
            finally:
                drainer.close()
            print("\n== fork start-up once the parent has imported alpaca.focuser (and so requests) itself")
            print(pre.describe())
            print(f"{'':<44} target <= 30 ms: {verdict_text(pre.median <= 30)}")
            results["start fork pre-imported ms"] = {"median": pre.median, "target": 30.0}
        drainer = QueueDrainer(multiprocessing.get_context("spawn").Queue())
        try:
            mems: dict[str, Series] = {}
            for _ in range(3):
                for k, v in idle_memory(server.address, drainer.queue).items():
                    mems.setdefault(k, Series(k, "MiB")).values.append(v)
        finally:
            drainer.close()
        print("\n== memory of one idle device process (spawn), VmRSS and PSS")
        for s in mems.values():
            print(s.describe())
        rss = mems["device RSS"].median
        print(f"{'':<44} RSS ratio to bare alpyca process: {rss / mems['bare alpyca RSS'].median:.3f}; "
              f"target <= 40 MB: {verdict_text(rss * 1.048576 <= 40)}")
        results["idle RSS MiB"] = {"median": rss, "baseline": mems["bare alpyca RSS"].median, "target MB": 40.0,
                                   "PSS": mems["device PSS"].median}
    return results


if __name__ == "__main__":
    main()
