"""Three faces of one report: console lines, JSON (with per-member timings), JUnit XML."""

from __future__ import annotations

import json
import statistics
import xml.etree.ElementTree as ET
from typing import IO, Any

from conform.checks import Outcome, Result
from conform.members import is_status_member
from conform.runner import Report

#: ConformU's response-time targets: status members 0.1 s, everything else 1 s.
STATUS_TARGET_S = 0.1
OTHER_TARGET_S = 1.0


def summary(report: Report) -> str:
    return f"{report.count(Outcome.PASSED)} passed, {report.count(Outcome.FAILED)} failed, {report.count(Outcome.WARNING)} warnings"


def describe(result: Result) -> str:
    """One line: verdict, level, device, member, what failed, what was sent, what came back."""
    c = result.check
    tag = "FAIL" if result.outcome is Outcome.FAILED else "WARN"
    where = " ".join(p for p in (c.device or "server", c.member or "") if p)
    line = f"{tag} [{c.level.value}] {where} ({c.family}: {c.name}): {result.message}"
    if result.sent:
        line += f" | sent: {result.sent}"
    if result.got:
        line += f" | got: {result.got}"
    return line


def write_console(report: Report, out: IO[str], verbose: bool = False) -> None:
    for r in report.results:
        if r.outcome in (Outcome.FAILED, Outcome.WARNING) or (verbose and r.outcome is Outcome.SKIPPED):
            out.write((describe(r) if r.outcome is not Outcome.SKIPPED else f"SKIP {r.check.id}: {r.message}") + "\n")
    out.write(summary(report) + f" ({report.count(Outcome.SKIPPED)} skipped, {report.duration_s:.1f} s)\n")


def timings(report: Report) -> list[dict[str, Any]]:
    """Per ``(device, member)``: calls, median and max seconds, and whether it is slow by
    ConformU's targets (judged by the median, so one stall on a busy machine is not a verdict)."""
    out = []
    for (device, member), times in sorted(report.timings.items()):
        kind = device.split(":")[0]
        status = kind != "management" and is_status_member(kind, member)
        target = STATUS_TARGET_S if status else OTHER_TARGET_S
        median = statistics.median(times)
        out.append(
            {
                "device": device,
                "member": member,
                "calls": len(times),
                "median_s": round(median, 6),
                "max_s": round(max(times), 6),
                "status_member": status,
                "target_s": target,
                "slow": median > target,
                "slow_calls": sum(1 for t in times if t > target),
            }
        )
    return out


def as_dict(report: Report) -> dict[str, Any]:
    return {
        "url": report.url,
        "strict": report.options.strict,
        "no_motion": report.options.no_motion,
        "devices": report.devices,
        "summary": {
            "passed": report.count(Outcome.PASSED),
            "failed": report.count(Outcome.FAILED),
            "warnings": report.count(Outcome.WARNING),
            "skipped": report.count(Outcome.SKIPPED),
            "duration_s": round(report.duration_s, 3),
        },
        "checks": [
            {
                "id": r.check.id,
                "family": r.check.family,
                "name": r.check.name,
                "level": r.check.level.value,
                "device": r.check.device,
                "member": r.check.member,
                "outcome": r.outcome.value,
                "message": r.message,
                "sent": r.sent,
                "got": r.got,
                "duration_s": round(r.duration_s, 6),
            }
            for r in report.results
        ],
        "timings": timings(report),
    }


def write_json(report: Report, out: IO[str]) -> None:
    json.dump(as_dict(report), out, indent=2)
    out.write("\n")


def junit_tree(report: Report) -> ET.ElementTree:
    """One <testsuite> per device (and one for the server), one <testcase> per check."""
    root = ET.Element(
        "testsuites",
        name="alpaca-conform",
        tests=str(len(report.results)),
        failures=str(report.count(Outcome.FAILED)),
        skipped=str(report.count(Outcome.SKIPPED)),
        time=f"{report.duration_s:.3f}",
    )
    suites: dict[str, ET.Element] = {}
    for r in report.results:
        name = r.check.device or "server"
        suite = suites.get(name)
        if suite is None:
            suite = suites[name] = ET.SubElement(root, "testsuite", name=name)
        case = ET.SubElement(
            suite, "testcase", classname=f"alpaca-conform.{name}.{r.check.family}", name=f"{r.check.member or '-'}: {r.check.name}", time=f"{r.duration_s:.4f}"
        )
        detail = "\n".join(x for x in (f"sent: {r.sent}" if r.sent else "", f"got: {r.got}" if r.got else "") if x)
        if r.outcome is Outcome.FAILED:
            el = ET.SubElement(case, "failure", message=r.message, type=r.check.level.value)
            el.text = detail
        elif r.outcome is Outcome.SKIPPED:
            ET.SubElement(case, "skipped", message=r.message)
        elif r.outcome is Outcome.WARNING:
            out = ET.SubElement(case, "system-out")
            out.text = f"warning [{r.check.level.value}]: {r.message}\n{detail}".strip()
    for name, suite in suites.items():
        cases = list(suite)
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
        suite.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))
        suite.set("errors", "0")
        suite.set("time", f"{sum(float(c.get('time', 0)) for c in cases):.3f}")
    return ET.ElementTree(root)


def write_junit(report: Report, path: str) -> None:
    tree = junit_tree(report)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
