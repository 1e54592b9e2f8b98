"""Emulator server CPU per simple GET, against bare Falcon + waitress returning the same envelope.

Target (issue 6): ratio <= 1.3 with no rule loaded; <= 1.4 with 100 non-matching rules loaded.
Each server runs in its own process; its CPU time (user + system, from /proc) over N requests,
divided by N, is the figure. Rounds interleave the servers.

    python -m bench.server_cpu [--requests 3000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import http.client
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from bench.harness import interleave, report
from bench.procs import ServerProcess, cpu_seconds

PATH = "/api/v1/safetymonitor/0/issafe?ClientID=1&ClientTransactionID=7"


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


def _per_request_us(server: ServerProcess, n: int):
    def run() -> float:
        before = cpu_seconds(server.pid)
        _load(server.url, n)
        return (cpu_seconds(server.pid) - before) / n * 1e6

    return run


def _rules_config(count: int) -> str:
    lines = ["[[devices]]", 'type = "safetymonitor"', ""]
    for i in range(count):
        lines += [
            "[[faults]]",
            f'name = "nomatch-{i}"',
            f'match = {{ device_type = "focuser", device_number = {i + 100}, member = "position" }}',
            'action = { kind = "ascom_error", number = 1035, message = "never" }',
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "plain.toml"
        plain.write_text('[[devices]]\ntype = "safetymonitor"\n')
        ruled = Path(tmp) / "rules.toml"
        ruled.write_text(_rules_config(100))
        servers = {
            "bare falcon+waitress": ServerProcess("-m", "bench.bare_server"),
            "emulator, no rules": ServerProcess("-m", "emulator.cli", "--port", "0", "--no-discovery", "--config", str(plain)),
        }
        try:
            try:
                servers["emulator, 100 non-matching rules"] = ServerProcess(
                    "-m", "emulator.cli", "--port", "0", "--no-discovery", "--config", str(ruled)
                )
            except RuntimeError:
                print("(emulator rejected a config with [[faults]]: fault rules not available, skipping that series)")
            for s in servers.values():  # warm up
                _load(s.url, 300)
            series = interleave(args.rounds, {k: _per_request_us(s, args.requests) for k, s in servers.items()}, "us CPU/req")
        finally:
            for s in servers.values():
                s.stop()
    ratios = report("Server CPU per GET", series, "bare falcon+waitress")
    print("targets: no rules <= 1.3, 100 non-matching rules <= 1.4")
    return ratios


if __name__ == "__main__":
    main()
