"""Emulator server CPU per simple GET, against bare Falcon + waitress returning the same envelope.

Targets (issue 6): ratio <= 1.3 with no rule loaded; <= 1.4 with 100 non-matching rules loaded;
the fault engine with no rule loaded costs nothing measurable (shown here against the same
emulator app served without the fault layer, ``bench.emulator_no_faults``).
Each server runs in its own process; its CPU time over N keep-alive requests (the sum of its
threads' schedstat run times, ns precision), divided by N, is the figure. Rounds interleave the
servers, in an order that flips every other round.

    python -m bench.server_cpu [--requests 2000] [--rounds 7] [--rules 100]
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file (python bench/<name>.py): make ``bench`` importable
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import argparse
import http.client
import tempfile
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

from bench.harness import interleave, machine, report, verdict_text
from bench.procs import EmulatorProcess, ServerProcess, thread_cpu_seconds

PATH = "/api/v1/safetymonitor/0/issafe?ClientID=1&ClientTransactionID=7"
PLAIN = '[[devices]]\ntype = "safetymonitor"\n'


def _load(url: str, n: int) -> None:
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    for _ in range(n):
        conn.request("GET", PATH)
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError(f"{url}{PATH} answered {r.status}")
    conn.close()


def _per_request_us(server: ServerProcess, n: int) -> Callable[[], float]:
    def run() -> float:
        before = thread_cpu_seconds(server.pid)
        _load(server.url, n)
        return (thread_cpu_seconds(server.pid) - before) / n * 1e6

    return run


def rules_config(count: int) -> str:
    """A safety monitor and ``count`` rules that never match it (other type, number and member)."""
    lines = [PLAIN]
    for i in range(count):
        lines += [
            "[[faults]]",
            f'name = "nomatch-{i}"',
            f'match = {{ device_type = "focuser", device_number = {i + 100}, member = "position" }}',
            'action = { kind = "ascom_error", number = 1035, message = "never" }',
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--rules", type=int, default=100)
    args = ap.parse_args(argv)
    print(machine())
    ruled_name = f"emulator, {args.rules} non-matching rules"
    servers: dict[str, ServerProcess] = {}
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "plain.toml"
        plain.write_text(PLAIN)
        try:
            servers["bare falcon+waitress"] = ServerProcess("-m", "bench.bare_server")
            servers["emulator app, no fault layer"] = ServerProcess("-m", "bench.emulator_no_faults", str(plain))
            servers["emulator, no rules"] = EmulatorProcess(PLAIN)
            servers[ruled_name] = EmulatorProcess(rules_config(args.rules))
            for s in servers.values():  # warm up
                _load(s.url, 300)
            series = interleave(args.rounds, {k: _per_request_us(s, args.requests) for k, s in servers.items()}, "us CPU/req")
        finally:
            for s in servers.values():
                s.stop()
    ratios = report("Server CPU per GET", series, "bare falcon+waitress")
    layer = series["emulator, no rules"].median / series["emulator app, no fault layer"].median
    print(f"\nfault layer with no rule, against the same app without it: ratio {layer:.3f} "
          f"({series['emulator, no rules'].median - series['emulator app, no fault layer'].median:+.1f} us CPU/req)")
    print(f"targets: no rules <= 1.3: {ratios['emulator, no rules']:.3f} -> {verdict_text(ratios['emulator, no rules'] <= 1.3)}; "
          f"{args.rules} non-matching rules <= 1.4: {ratios[ruled_name]:.3f} -> {verdict_text(ratios[ruled_name] <= 1.4)}")
    return {
        "bare us": series["bare falcon+waitress"].median,
        "no fault layer us": series["emulator app, no fault layer"].median,
        "no rules us": series["emulator, no rules"].median,
        "rules us": series[ruled_name].median,
        "no rules ratio": ratios["emulator, no rules"],
        "rules ratio": ratios[ruled_name],
        "fault layer ratio": layer,
    }


if __name__ == "__main__":
    main()
