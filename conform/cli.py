"""``alpaca-conform``: check an Alpaca server; exit 0 only when no check failed."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from typing import Any, Callable, Iterator

from conform.context import Options
from conform.runner import BEHAVIOUR_FAMILIES, PROTOCOL_FAMILIES, PlanError, parse_devices, run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="alpaca-conform",
        description="Check that an ASCOM Alpaca server speaks the protocol and its devices behave (like ConformU).",
    )
    p.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:11111")
    p.add_argument("--devices", help="devices to check, e.g. camera:0,telescope:0 (default: every configured device)")
    p.add_argument("--protocol", action="store_true", help="run the protocol checks (default: protocol and behaviour)")
    p.add_argument("--behaviour", "--behavior", action="store_true", help="run the device-behaviour checks")
    p.add_argument("--strict", action="store_true", help="ConformU's strict mode: bad ClientID/ClientTransactionID and bad requests must get HTTP 400")
    p.add_argument("--no-motion", action="store_true", help="safe mode for real hardware: no slews, moves, shutter, cover, park, exposures or switch writes")
    p.add_argument("--junit", metavar="FILE", help="write a JUnit XML report (one test case per check)")
    p.add_argument("--json", metavar="FILE", help="write a JSON report with per-member timings")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per HTTP request (default 10)")
    p.add_argument("--operation-timeout", type=float, default=120.0, help="seconds an asynchronous operation may take (default 120)")
    p.add_argument("-v", "--verbose", action="store_true", help="also list skipped checks")
    return p


@contextlib.contextmanager
def _status_line(on: bool) -> Iterator[Callable[[int, int, Any], None] | None]:
    """On a terminal, a rich status line naming the check that runs and how many are done."""
    if not on:
        yield None
        return
    from rich.console import Console

    with Console(file=sys.stdout).status("planning the checks") as status:
        yield lambda done, total, check: status.update(f"{done}/{total} checks done; now {check.id}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from conform import reporters

    families: tuple[str, ...] | None = None
    if args.protocol or args.behaviour:
        families = (PROTOCOL_FAMILIES if args.protocol else ()) + (BEHAVIOUR_FAMILIES if args.behaviour else ())
    options = Options(strict=args.strict, no_motion=args.no_motion, timeout_s=args.timeout, operation_timeout_s=args.operation_timeout)
    url = args.url if "://" in args.url else f"http://{args.url}"
    try:
        devices = parse_devices(args.devices) if args.devices else None
        with _status_line(sys.stdout.isatty()) as progress:
            report = run(url, options, devices, families, progress)
    except PlanError as exc:
        print(f"alpaca-conform: {exc}", file=sys.stderr)
        return 2
    reporters.write_console(report, sys.stdout, args.verbose)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            reporters.write_json(report, f)
    if args.junit:
        reporters.write_junit(report, args.junit)
    return 0 if report.ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
