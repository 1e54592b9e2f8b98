"""alpaca-conform: a conformance checker for any ASCOM Alpaca server (in the spirit of ConformU).

    from conform import run, Options
    report = run("http://127.0.0.1:11111", Options(strict=True))
    assert report.ok, [r.message for r in report.results if r.outcome.value == "failed"]

How a run flows::

    members.py  (device type -> member -> verb, params, value kind, since-version)
        │
    runner.make_plan ─ management.discover / --devices ─> context.DeviceContext (InterfaceVersion)
        │                                                   │
        │   checks.family builders: management, path, verb, envelope, schema, transaction,
        │   casing, ids, params (protocol.py, raw HTTP via transport.py, shapes via schema.py),
        │   behaviour (behaviour/, through alpyca)
        ▼
    runner.run_check ─> Result ─> Report ─> reporters (console, JSON with timings, JUnit)
                                     └────> plugin (pytest --alpaca-conform URL: one item per check)
"""

from conform.checks import Level, Outcome
from conform.context import Options
from conform.runner import Report, run

__all__ = ["Level", "Options", "Outcome", "Report", "run"]
