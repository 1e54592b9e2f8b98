"""The emulator's app served without the fault layer: plain waitress, no rules, no traffic log.

Only for ``bench.server_cpu``: against the normal emulator (which always serves through
:mod:`emulator.serve.sockets` and the fault middleware), it shows what fault injection costs
with no rule loaded.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file (python bench/<name>.py): make ``bench`` importable
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import signal
import sys
import threading

from emulator.config import load_config
from emulator.http.app import build_app
from emulator.http.management import ServerDescription
from emulator.serve.server import BackgroundServer
from emulator.sim.registry import Registry


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bench.emulator_no_faults CONFIG.toml", file=sys.stderr)
        return 2
    cfg = load_config(args[0])
    s = cfg.emulator
    registry = Registry(cfg.devices, s.time_scale, s.seed)
    server = BackgroundServer(build_app(registry, ServerDescription(s.server_name, s.manufacturer, s.location)), "127.0.0.1", 0, threads=8)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    server.start()
    print(f"listening on http://127.0.0.1:{server.port}", flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
