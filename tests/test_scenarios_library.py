"""The bundled rehearsal library, one test per scenario, so the suite's xdist workers share it out."""

from __future__ import annotations

import pytest

from scenarios.runner import run_scenario
from scenarios.schema import library_dir, load_file

LIBRARY = [(path, sc) for path in sorted(library_dir().glob("*.toml")) for sc in load_file(path)]


@pytest.mark.parametrize(("path", "scenario"), LIBRARY, ids=[sc.name for _, sc in LIBRARY])
def test_library_scenario(path, scenario) -> None:
    verdict = run_scenario(scenario, source=str(path))
    assert verdict.passed, verdict.report()
