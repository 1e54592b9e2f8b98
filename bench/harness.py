"""Interleaved A/B measurement: rounds alternate candidate and baseline, so drift hits both.

Machines here are noisy (other jobs share the two cores); absolute figures mean little, ratios
measured side by side in one run mean a lot. Every benchmark reports the median of each side,
the spread (min..max over rounds) and the ratio of medians. The order of the runners flips every
other round (A B, B A, ...), so neither side always runs right after the other's warm-up.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
from dataclasses import dataclass, field
from typing import Callable, Iterable


@dataclass
class Series:
    name: str
    unit: str
    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def describe(self) -> str:
        return (
            f"{self.name:<44} median {self.median:10.1f} {self.unit}"
            f"   spread {min(self.values):.1f}..{max(self.values):.1f} ({len(self.values)} rounds)"
        )


def interleave(rounds: int, runners: dict[str, Callable[[], float]], unit: str, *, alternate: bool = True) -> dict[str, Series]:
    """Run each runner once per round; each returns one figure. ``alternate`` flips the order every other round."""
    series = {name: Series(name, unit) for name in runners}
    names = list(runners)
    for i in range(rounds):
        order = names if not alternate or i % 2 == 0 else names[::-1]
        for name in order:
            series[name].values.append(runners[name]())
    return series


def report(title: str, series: dict[str, Series], baseline: str, target: float | None = None) -> dict[str, float]:
    """Print each series and its ratio to ``baseline``; return {name: ratio}."""
    print(f"\n== {title}")
    base = series[baseline].median
    ratios = {}
    for name, s in series.items():
        print(s.describe())
        if name != baseline:
            ratio = s.median / base if base else float("inf")
            ratios[name] = ratio
            verdict = ""
            if target is not None:
                verdict = "  (target <= %.2f: %s)" % (target, verdict_text(ratio <= target))
            print(f"{'':<44} ratio to {baseline}: {ratio:.3f}{verdict}")
    return ratios


def verdict_text(ok: bool) -> str:
    return "met" if ok else "MISSED"


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; nan for no values."""
    data = sorted(values)
    if not data:
        return float("nan")
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> str:
    """One line naming the machine and its load, printed at the top of every benchmark."""
    try:
        load = "%.1f %.1f %.1f" % os.getloadavg()
    except OSError:
        load = "?"
    return (
        f"machine: {os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()} "
        f"({sys.implementation.name}), {platform.system()} {platform.release()}, load average {load}"
    )
