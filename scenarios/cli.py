"""``alpaca-scenarios``: run, list, check and start scenario files (a thin front over the plugin).

    alpaca-scenarios run [PATHS] [-n N] [--junit FILE] [--json FILE] [-k NAME|EXPR]
    alpaca-scenarios list [PATHS]
    alpaca-scenarios check [PATHS]
    alpaca-scenarios new NAME
    alpaca-scenarios schema [--output FILE]
    alpaca-scenarios from-recording FILE [-o OUT]   (a recorded session as a scenario: scenarios.recorded)

``run`` hands the files to pytest with this package's plugin, so what runs here runs the same in
``pytest <dir> -n auto``; without PATHS it runs the bundled library. What it prints is
:mod:`scenarios.progress`'s (``-v``: pytest's own output). The exit status is pytest's:
0 only when every scenario passed. ``-k NAME`` with a scenario's exact name runs that scenario
alone: a failing scenario prints ``alpaca-scenarios run FILE -k NAME`` to re-run just it.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from scenarios.schema import ScenarioError, json_schema_text, library_dir, load_file, load_text, looks_like_scenario_file

TEMPLATE = '''# A rehearsal scenario: an emulator, the AlpacaDevices under test, a timeline, and what must happen.
# Run it with:  alpaca-scenarios run {filename}      (or: pytest {filename})
# Editors can check it as it is typed with the JSON Schema from `alpaca-scenarios schema`.

[[scenario]]
name = "{name}"                      # unique in this file; the pytest item name
description = """
What this rehearses and why: the weather turns and polling sees it within two intervals.
"""
timeout_s = 20                       # wall-clock deadline of the whole scenario

[scenario.emulator]
time_scale = 10                      # simulated seconds per wall second (slews, exposures)
seed = 1                             # printed with every failure, so a run can be replayed

[[scenario.devices]]                 # one AlpacaDevice = one OS process
name = "weather"                     # how steps refer to it
type = "SafetyMonitor"
number = 0
call_timeout = 3.0                   # deadline of each call (wall s)
http_timeout = 1.0
retry = {{ tries = 3, backoff_s = 0.1 }}

# The timeline: each step runs `at` seconds from the start, or `after` seconds after the previous one.
[[scenario.steps]]
do = "get"                           # get a property (or call a method with args = {{...}})
device = "weather"
member = "IsSafe"
expect = {{ value = true, within_s = 2 }}

[[scenario.steps]]
do = "start_poll"
device = "weather"
member = "IsSafe"
interval_s = 0.2

[[scenario.steps]]
do = "expect_poll"                   # checks retry until they hold, for up to within_s
device = "weather"
member = "IsSafe"
value = true
within_s = 2

[[scenario.steps]]
after = 0.3
do = "set_state"                     # the weather turns, in the emulator
device_type = "safetymonitor"
values = {{ IsSafe = false }}

[[scenario.steps]]
do = "expect_poll"
device = "weather"
member = "IsSafe"
value = false
within_s = 0.4                       # two polling intervals

# Faults: match a member, pick an action kind, trigger it (see the README, "Rehearse a fault").
[[scenario.steps]]
do = "fault"
label = "nope"
match = {{ device_type = "safetymonitor", member = "issafe", verb = "GET" }}
action = {{ kind = "ascom_error", number = 0x401, message = "rehearsed" }}
trigger = {{ count = 1 }}

[[scenario.steps]]
do = "get"
device = "weather"
member = "IsSafe"
expect = {{ error = "RemoteDeviceError", cause = "ascom", error_number = 0x401 }}
'''


def _collect(paths: list[str]) -> list[Path]:
    if not paths:
        return sorted(library_dir().glob("*.toml"))
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*.toml") if looks_like_scenario_file(f)))
        else:
            out.append(p)
    return out


def _scenario_names(paths: list[str]) -> set[str]:
    """Names of the scenarios in these files (files that do not load are left to pytest to report)."""
    names: set[str] = set()
    for path in _collect(paths):
        try:
            names.update(sc.name for sc in load_file(path))
        except ScenarioError:
            continue
    return names


def cmd_run(args: argparse.Namespace) -> int:
    import pytest

    paths = args.paths or [str(library_dir())]
    pytest_args = [*paths, "-p", "no:cacheprovider", "-o", "addopts=", "-o", "python_files="]
    pytest_args += ["--rootdir", os.getcwd(), "-c", os.devnull]
    # this process imported the plugin before pytest started: nothing to rewrite, nothing to warn about
    pytest_args += ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        pytest_args += ["-p", "scenarios.plugin", "-p", "xdist", "-p", "pytest_timeout"]
    if args.n is not None and str(args.n) not in ("0", "1"):
        pytest_args += ["-n", str(args.n)]
    plugins: list[object] = []
    if args.verbose:
        pytest_args += ["-v", "-rfE"]  # pytest's own report, as it prints it
    else:
        from scenarios.progress import Progress

        pytest_args += ["-p", "no:terminal"]
        plugins.append(Progress(lines=not args.quiet))
    if args.junit:
        pytest_args += ["--junitxml", args.junit]
    if args.json:
        pytest_args += ["--alpaca-json", args.json]
    if args.k:
        # an exact scenario name selects that scenario alone (pytest's -k would also match
        # "NAME-2", or every scenario of a file whose name contains NAME); else -k as pytest has it
        if args.k in _scenario_names(args.paths):
            pytest_args += ["--alpaca-name", args.k]
        else:
            pytest_args += ["-k", args.k]
    if args.x:
        pytest_args += ["-x"]
    return int(pytest.main(pytest_args, plugins=plugins))


def cmd_list(args: argparse.Namespace) -> int:
    status = 0
    for path in _collect(args.paths):
        try:
            scenarios = load_file(path)
        except ScenarioError as exc:
            print(exc, file=sys.stderr)
            status = 1
            continue
        for sc in scenarios:
            first = " ".join(sc.description.split())
            print(f"{sc.name:40} {first}")
    return status


def cmd_check(args: argparse.Namespace) -> int:
    status = 0
    n = 0
    for path in _collect(args.paths):
        try:
            n += len(load_file(path))
        except ScenarioError as exc:
            print(exc, file=sys.stderr)
            status = 1
    if status == 0:
        print(f"{n} scenario(s) valid")
    return status


def cmd_new(args: argparse.Namespace) -> int:
    name = args.name
    path = Path(name if name.endswith(".toml") else f"{name}.toml")
    if path.exists() and not args.force:
        print(f"{path} exists; use --force to overwrite", file=sys.stderr)
        return 1
    stem = path.stem.replace(" ", "-")
    path.write_text(TEMPLATE.format(name=stem, filename=path.name), encoding="utf-8")
    print(f"wrote {path}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    text = json_schema_text()
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def cmd_from_recording(args: argparse.Namespace) -> int:
    from emulator.serve.recording import RecordingError, read_recording
    from scenarios.recorded import scenario_from_recording

    source = Path(args.file)
    out = Path(args.output) if args.output else source.with_suffix(".toml")
    if out.exists() and not args.force:
        print(f"{out} exists; use --force to overwrite", file=sys.stderr)
        return 1
    name = args.name or re.sub(r"[^A-Za-z0-9_.\-]+", "-", source.stem) or "recorded"
    try:
        text = scenario_from_recording(read_recording(source), name, source.name, args.seed, tuple(args.ignore_value))
    except (RecordingError, ValueError) as exc:
        print(f"alpaca-scenarios from-recording: {exc}", file=sys.stderr)
        return 2
    try:
        load_text(text, str(out))  # what is written must load
    except ScenarioError as exc:  # pragma: no cover - a defect of the generator
        print(f"alpaca-scenarios from-recording: the scenario made from {source} does not validate:\n{exc}", file=sys.stderr)
        return 2
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alpaca-scenarios", description="Run ASCOM Alpaca rehearsal scenarios")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run scenario files (the bundled library when no PATHS)")
    run.add_argument("paths", nargs="*", metavar="PATHS")
    run.add_argument("-n", metavar="N", default=None, help="parallel workers (pytest-xdist), a number or 'auto'")
    run.add_argument("--junit", metavar="FILE", help="write a JUnit XML report")
    run.add_argument("--json", metavar="FILE", help="write a JSON report of every verdict")
    run.add_argument(
        "-k", metavar="NAME|EXPR",
        help="only the scenario named exactly NAME; otherwise only scenarios matching EXPR (as pytest -k)",
    )
    run.add_argument("-x", action="store_true", help="stop at the first failure")
    run.add_argument("-q", "--quiet", action="store_true", help="no line per scenario: the failures and the summary table only")
    run.add_argument("-v", "--verbose", action="store_true", help="pytest's own detailed output instead of the summary")
    run.set_defaults(func=cmd_run)
    lst = sub.add_parser("list", help="list scenarios with their description (the bundled library by default)")
    lst.add_argument("paths", nargs="*", metavar="PATHS")
    lst.set_defaults(func=cmd_list)
    chk = sub.add_parser("check", help="validate scenario files without running them")
    chk.add_argument("paths", nargs="*", metavar="PATHS")
    chk.set_defaults(func=cmd_check)
    new = sub.add_parser("new", help="write an annotated starting scenario file NAME.toml")
    new.add_argument("name", metavar="NAME")
    new.add_argument("--force", action="store_true", help="overwrite an existing file")
    new.set_defaults(func=cmd_new)
    rec = sub.add_parser("from-recording", help="make a scenario that makes a recorded session's calls again (--record FILE)")
    rec.add_argument("file", metavar="FILE", help="a recording of alpaca-proxy or alpaca-emulator --record")
    rec.add_argument("-o", "--output", metavar="OUT", help="the scenario file to write (default: FILE with .toml)")
    rec.add_argument("--name", help="the scenario's name (default: from the file name)")
    rec.add_argument("--seed", type=int, default=0, help="the emulator seed of the scenario (default 0)")
    rec.add_argument("--ignore-value", action="append", default=[], metavar="PATTERN",
                     help="expect no value of members matching TYPE/MEMBER or TYPE/N/MEMBER (besides the time-varying ones)")
    rec.add_argument("--force", action="store_true", help="overwrite an existing file")
    rec.set_defaults(func=cmd_from_recording)
    sch = sub.add_parser("schema", help="print the JSON Schema of scenario files")
    sch.add_argument("--output", "-o", metavar="FILE")
    sch.set_defaults(func=cmd_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
