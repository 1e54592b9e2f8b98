"""Where an AlpacaDevice.get spends its time, stage by stage (a diagnostic, not a target).

Patches timestamps into astra's internals (``DeviceServer._dispatch``/``_serve``,
``DeviceCalls.attempt``, ``ServerChannel.reply``, ``DeviceChannel._take``) and starts the
device with fork, so the child inherits the patches; the child sends its stamps back inside
each reply. All stamps are ``time.monotonic()``, one clock for every process on the host.
Because it depends on private names, it stops with a clear message when astra changes them.

    python -m bench.ipc_breakdown [--calls 600] [--op get|set]
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file (python bench/<name>.py): make ``bench`` importable
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import argparse
import multiprocessing
import statistics
import threading
import time
from typing import Any

from bench.harness import machine, percentile
from bench.procs import EmulatorProcess, QueueDrainer

STAGES = (
    "caller request() -> child listener has it",
    "listener -> pool thread starts the call",
    "pool thread -> HTTP call starts",
    "HTTP call (alpyca, in the child)",
    "HTTP end -> reply sent",
    "reply sent -> caller's owner thread has it",
    "owner thread -> calling thread returns",
    "total AlpacaDevice.get",
    "direct alpyca (same loop, for scale)",
)


def _patch() -> dict[str, float]:
    """Install the stamps; returns the caller-side stamp dict."""
    from astra import calls, ipc, server

    for owner, name in ((server.DeviceServer, "_dispatch"), (server.DeviceServer, "_serve"), (calls.DeviceCalls, "attempt"),
                        (server.ServerChannel, "reply"), (ipc.DeviceChannel, "_take")):
        if not hasattr(owner, name):
            raise SystemExit(f"astra no longer has {owner.__name__}.{name}: update bench/ipc_breakdown.py")
    child: dict[Any, dict[str, float]] = {}
    caller: dict[str, float] = {}
    mono = time.monotonic
    tls = threading.local()
    dispatch, serve = server.DeviceServer._dispatch, server.DeviceServer._serve
    attempt, reply, take = calls.DeviceCalls.attempt, server.ServerChannel.reply, ipc.DeviceChannel._take

    def p_dispatch(self: Any, call: Any) -> Any:
        child.setdefault(call.rid, {})["recv"] = mono()
        return dispatch(self, call)

    def p_serve(self: Any, op: Any, call: Any) -> Any:
        child.setdefault(call.rid, {})["worker"] = mono()
        tls.rid = call.rid
        return serve(self, op, call)

    def p_attempt(self: Any, kind: str, method: str, fn: Any, deadline: Any) -> Any:
        rid = getattr(tls, "rid", None)
        child.setdefault(rid, {})["http0"] = mono()
        try:
            return attempt(self, kind, method, fn, deadline)
        finally:
            child[rid]["http1"] = mono()

    def p_reply(self: Any, rid: int, ok: bool, value: Any) -> Any:
        stamps = child.pop(rid, {})
        stamps["reply"] = mono()
        return reply(self, rid, ok, (value, stamps) if ok else value)

    def p_take(self: Any, rid: int) -> Any:
        caller["owner"] = mono()
        return take(self, rid)

    server.DeviceServer._dispatch, server.DeviceServer._serve = p_dispatch, p_serve
    calls.DeviceCalls.attempt, server.ServerChannel.reply, ipc.DeviceChannel._take = p_attempt, p_reply, p_take
    return caller


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=600)
    ap.add_argument("--op", choices=("get", "set"), default="get", help="get Position, or set TempComp")
    args = ap.parse_args(argv)
    caller = _patch()
    from alpaca.focuser import Focuser

    from astra.alpaca_device_process import AlpacaDevice

    print(machine())
    segs: dict[str, list[float]] = {k: [] for k in STAGES}
    with EmulatorProcess('[[devices]]\ntype = "focuser"\nconnect_delay_s = 0\n') as server:
        drainer = QueueDrainer(multiprocessing.get_context("fork").Queue())
        dev = AlpacaDevice(server.address, "Focuser", 0, "breakdown", drainer.queue, start_method="fork")
        dev.start()
        direct = Focuser(server.address, 0)
        try:
            if args.op == "get":
                wrapped, plain = (lambda: dev.get("Position")), (lambda: direct.Position)
            else:
                wrapped, plain = (lambda: dev.set("TempComp", False)), (lambda: setattr(direct, "TempComp", False))
            for _ in range(20):
                wrapped()
                plain()
            mono = time.monotonic
            for _ in range(args.calls):
                t0 = mono()
                _, st = wrapped()
                t9 = mono()
                values = (st["recv"] - t0, st["worker"] - st["recv"], st["http0"] - st["worker"], st["http1"] - st["http0"],
                          st["reply"] - st["http1"], caller["owner"] - st["reply"], t9 - caller["owner"], t9 - t0)
                for name, v in zip(STAGES, values):
                    segs[name].append(v * 1e6)
                a = mono()
                plain()
                segs[STAGES[-1]].append((mono() - a) * 1e6)
        finally:
            dev.stop()
            drainer.close()
    what = "get('Position')" if args.op == "get" else "set('TempComp', False)"
    print(f"\n== one AlpacaDevice.{what}, stage by stage ({args.calls} calls, fork child)")
    for name in STAGES:
        print(f"{name:<40} median {statistics.median(segs[name]):8.1f} us   p90 {percentile(segs[name], 90):8.1f} us")
    wrapper = statistics.median(segs["total AlpacaDevice.get"]) - statistics.median(segs["HTTP call (alpyca, in the child)"])
    print(f"{'':<40} total minus the HTTP call: {wrapper:.1f} us")
    return {name: statistics.median(v) for name, v in segs.items()}


if __name__ == "__main__":
    main()
