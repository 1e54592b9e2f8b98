"""Interleaved A/B measurement: rounds alternate candidate and baseline, so drift hits both.

Machines here are noisy; absolute figures mean little, ratios measured side by side in one run
mean a lot. Every benchmark reports the median of each side, the spread (min..max over rounds)
and the ratio of medians.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Callable


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


def interleave(rounds: int, runners: dict[str, Callable[[], float]], unit: str) -> dict[str, Series]:
    """Run each runner once per round, in the same order every round; each returns one figure."""
    series = {name: Series(name, unit) for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            series[name].values.append(run())
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
                verdict = "  (target <= %.2f: %s)" % (target, "met" if ratio <= target else "MISSED")
            print(f"{'':<44} ratio to {baseline}: {ratio:.3f}{verdict}")
    return ratios
