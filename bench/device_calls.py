"""AlpacaDevice calls through the pipe, against direct alpyca calls of the same members.

Target (issues 6 and 9): ratio <= 1.15 for a property get, a property set and a method call
(the original wrapper: about 1.5). The emulator runs in its own process so that neither client
shares its GIL. Each round alternates single calls, direct then wrapped then direct ..., so that
both sides meet the machine in the same state (here other jobs move call times by 50 % within
seconds); a round's figure per side is the median of its calls (``--blocks``: the older way,
a block of direct calls then a block of wrapped ones, order flipped every other round).
Before timing, each case is run once more with the emulator's traffic log cleared, and the HTTP
requests one call caused are printed: a wrapper that reads before it writes shows up there.
A bare multiprocessing Pipe echo round trip (the floor for any process-per-device wrapper) is
printed for scale.

    python -m bench.device_calls [--calls 200] [--rounds 15] [--start-method spawn] [--blocks [--mean]]
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file (python bench/<name>.py): make ``bench`` importable
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import argparse
import json
import statistics
import multiprocessing
import time
import urllib.request
from typing import Any, Callable

from bench.harness import Series, interleave, machine, report
from bench.procs import EmulatorProcess
from astra.queues import QueueDrain

FOCUSER = '[[devices]]\ntype = "focuser"\n'


def _timed(n: int, fn: Callable[[], Any]) -> float:
    """Mean wall time of one call over ``n`` calls, us."""
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


def _median_call(n: int, fn: Callable[[], Any]) -> float:
    """Median wall time of ``n`` single calls, us: robust to the scheduler stalls other jobs cause here."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def _alternated(n: int, direct: Callable[[], Any], wrapped: Callable[[], Any]) -> tuple[float, float]:
    """Medians (us) of ``n`` direct and ``n`` wrapped single calls, made one of each in turn."""
    d_times, w_times = [], []
    clock = time.perf_counter
    for _ in range(n):
        t0 = clock()
        direct()
        t1 = clock()
        wrapped()
        t2 = clock()
        d_times.append(t1 - t0)
        w_times.append(t2 - t1)
    return statistics.median(d_times) * 1e6, statistics.median(w_times) * 1e6


def _control(url: str, method: str, path: str) -> Any:
    req = urllib.request.Request(f"{url}/emulator/v1/{path}", method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def http_requests_of(url: str, fn: Callable[[], Any]) -> list[str]:
    """The Alpaca requests (verb member) the emulator saw while ``fn`` ran once."""
    _control(url, "DELETE", "traffic")
    fn()
    deadline = time.monotonic() + 2.0
    entries: list[dict[str, Any]] = []
    while time.monotonic() < deadline:  # the log is appended once a request's fate is known
        entries = [e for e in _control(url, "GET", "traffic") if e.get("device_type") == "focuser"]
        if entries:
            break
        time.sleep(0.01)
    return [f"{e['verb']} {e['member']}" for e in entries]


def _echo(conn: Any) -> None:
    while True:
        msg = conn.recv()
        if msg is None:
            return
        conn.send(msg)


def pipe_floor_us(start_method: str, n: int = 2000) -> float:
    """Median of 5 batches: one send + recv through a Pipe to a process that echoes it."""
    ctx = multiprocessing.get_context(start_method)
    a, b = ctx.Pipe()
    p = ctx.Process(target=_echo, args=(b,), daemon=True)
    p.start()
    try:
        msg = ("get", 1, 0.0, {"method": "Position", "kwargs": {}})
        a.send(msg)
        a.recv()
        figures = sorted(_timed(n, lambda: (a.send(msg), a.recv())) for _ in range(5))
        return figures[2]
    finally:
        a.send(None)
        p.join(5)
        if p.is_alive():
            p.kill()
            p.join(5)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=200, help="calls per round and side")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--start-method", default="spawn", choices=("spawn", "fork", "forkserver"))
    ap.add_argument("--blocks", action="store_true", help="per round, a block of direct calls then one of wrapped calls")
    ap.add_argument("--mean", action="store_true", help="with --blocks: the mean call time instead of the median call")
    args = ap.parse_args(argv)
    from alpaca.focuser import Focuser

    from astra.alpaca_device_process import AlpacaDevice

    print(machine())
    results: dict[str, Any] = {}
    with EmulatorProcess(FOCUSER) as server:
        direct = Focuser(server.address, 0)
        direct.Connected = True
        ctx = multiprocessing.get_context(args.start_method)
        queue = ctx.Queue()
        drainer = QueueDrain(queue, lambda item: None, name="bench-queue-drain").start()  # logs must not pile up
        dev = AlpacaDevice(server.address, "Focuser", 0, "bench focuser", queue, start_method=args.start_method)
        dev.start()
        try:
            dev.get("Position")  # connected and warm
            n = args.calls
            timer = _timed if args.mean else _median_call
            if args.blocks:
                print(f"figure per round: {'mean' if args.mean else 'median'} of {n} single calls, in blocks")
            else:
                print(f"figure per round: median of {n} single calls per side, direct and wrapped calls alternated")
            cases = {
                "get Position": (lambda: direct.Position, lambda: dev.get("Position")),
                "set TempComp": (lambda: setattr(direct, "TempComp", False), lambda: dev.set("TempComp", False)),
                "call Halt()": (lambda: direct.Halt(), lambda: dev.get("Halt")),
            }
            print("\nHTTP requests per call (emulator traffic log):")
            for name, (d, w) in cases.items():
                print(f"  {name:<14} direct: {http_requests_of(server.url, d)}   AlpacaDevice: {http_requests_of(server.url, w)}")
            floor = pipe_floor_us(args.start_method)
            print(f"bare Pipe echo round trip ({args.start_method} child): {floor:.1f} us")
            results["pipe floor us"] = floor
            for name, (d, w) in cases.items():
                for _ in range(20):  # warm both paths
                    d()
                    w()
                if args.blocks:
                    series = interleave(
                        args.rounds,
                        {"direct alpyca": lambda d=d: timer(n, d), "AlpacaDevice": lambda w=w: timer(n, w)},
                        "us/call",
                    )
                else:
                    series = {k: Series(k, "us/call") for k in ("direct alpyca", "AlpacaDevice")}
                    for _ in range(args.rounds):
                        dm, wm = _alternated(n, d, w)
                        series["direct alpyca"].values.append(dm)
                        series["AlpacaDevice"].values.append(wm)
                ratio = report(f"{name}: AlpacaDevice vs direct alpyca", series, "direct alpyca", 1.15)["AlpacaDevice"]
                added = series["AlpacaDevice"].median - series["direct alpyca"].median
                print(f"{'':<44} added by the wrapper: {added:+.1f} us/call")
                results[name] = {
                    "direct us": series["direct alpyca"].median,
                    "AlpacaDevice us": series["AlpacaDevice"].median,
                    "ratio": ratio,
                    "target": 1.15,
                }
        finally:
            dev.stop()
            drainer.stop(2)
            queue.close()
    return results


if __name__ == "__main__":
    main()
