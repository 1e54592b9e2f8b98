"""The sky model: stars fixed on the sphere by seed and tile, real counts, Sun, Moon and sky glow."""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from emulator.sim import sky

REPO = Path(__file__).resolve().parents[1]
GREENWICH = (51.48, 0.0)


def _digest(stars: sky.Stars) -> str:
    return hashlib.sha256(np.stack([stars.ra, stars.dec, stars.mag]).tobytes()).hexdigest()


def test_same_position_same_stars_in_another_process():
    here = _digest(sky.stars_near(7, 83.8, -5.4, 0.5))
    code = "from emulator.sim import sky; import hashlib, numpy as np; s = sky.stars_near(7, 83.8, -5.4, 0.5); " \
           "print(hashlib.sha256(np.stack([s.ra, s.dec, s.mag]).tobytes()).hexdigest())"
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60, check=True)
    assert there.stdout.strip() == here
    assert _digest(sky.stars_near(8, 83.8, -5.4, 0.5)) != here  # another seed, another sky


def test_a_tile_does_not_depend_on_what_was_asked_before():
    sky.tile_stars.cache_clear()
    first = _digest(sky.tile_stars(3, 100, 5))
    sky.tile_stars.cache_clear()
    sky.stars_near(3, 200.0, 40.0, 2.0)  # other tiles first
    assert _digest(sky.tile_stars(3, 100, 5)) == first


def test_tiles_cover_the_sphere_and_stars_stay_in_their_tile():
    assert sum(sky.band_tiles(b) for b in range(180)) == pytest.approx(41253, rel=0.01)  # ~1 deg^2 each
    stars = sky.tile_stars(0, 120, 17)
    span = 360.0 / sky.band_tiles(120)
    assert np.all((stars.ra >= 17 * span) & (stars.ra < 18 * span))
    assert np.all((stars.dec >= 30.0) & (stars.dec < 31.0))
    # a circle near the RA = 0 seam and near the pole both find their tiles
    assert (90, 0) in sky.tiles_near(0.1, 0.5, 0.5) and (90, sky.band_tiles(90) - 1) in sky.tiles_near(0.1, 0.5, 0.5)
    assert len(sky.tiles_near(0.0, 89.9, 1.5)) == sky.band_tiles(179) + sky.band_tiles(178)  # round the pole


def test_magnitude_counts_rise_like_the_real_sky():
    stars = sky.stars_near(1, 150.0, 10.0, 4.0)
    area = math.pi * 4.0**2  # roughly: tiles overlap the circle's edge
    counts = {m: np.count_nonzero(stars.mag < m) for m in (8, 10, 12, 14, 16)}
    slopes = [math.log10(counts[m + 2] / counts[m]) / 2 for m in (8, 10, 12, 14)]
    assert all(0.3 <= s <= 0.6 for s in slopes), slopes
    assert 3 < counts[10] / area < 30  # ~10 stars per square degree to V = 10


def test_sun_altitude_at_greenwich_solstices():
    winter = datetime(2026, 12, 21, 12, 0, tzinfo=timezone.utc)
    summer = datetime(2026, 6, 21, 12, 0, tzinfo=timezone.utc)
    assert sky.altaz(*sky.sun_radec(winter), winter, *GREENWICH)[0] == pytest.approx(90 - 51.48 - 23.44, abs=0.5)
    assert sky.altaz(*sky.sun_radec(summer), summer, *GREENWICH)[0] == pytest.approx(90 - 51.48 + 23.44, abs=0.5)
    midnight = winter + timedelta(hours=12)
    assert sky.sky_state(midnight, *GREENWICH).sun_alt < -50


def test_moon_full_opposite_the_sun():
    full = datetime(2024, 1, 25, 17, 54, tzinfo=timezone.utc)  # a full Moon
    new = datetime(2024, 1, 11, 11, 57, tzinfo=timezone.utc)  # a new Moon
    assert sky.sky_state(full, *GREENWICH).moon_illumination > 0.97
    assert sky.sky_state(new, *GREENWICH).moon_illumination < 0.03
    ra, dec = sky.moon_radec(full)
    assert abs(dec) < 29  # within the Moon's reach of the equator


def test_sky_brightens_monotonically_through_twilight_into_day():
    alts = np.arange(-25.0, 40.0, 1.0)
    mu = [sky.sky_brightness(a) for a in alts]
    assert all(b < a for a, b in zip(mu[7:], mu[8:]))  # from -18 up, every degree brighter (smaller mag)
    assert mu[0] == pytest.approx(21.0, abs=0.05)  # night: the dark sky
    assert sky.sky_brightness(30.0) < 6.0  # day
    assert [sky.phase_name(a) for a in (10, -3, -9, -15, -30)] == ["day", "civil", "nautical", "astronomical", "night"]


def test_moon_brightens_the_night():
    assert sky.sky_brightness(-40.0, moon_alt=50.0, moon_illumination=1.0) < 19.0
    assert sky.sky_brightness(-40.0, moon_alt=-5.0, moon_illumination=1.0) == pytest.approx(21.0, abs=0.01)


def test_sunlight_override_beats_the_sun():
    midnight = datetime(2026, 12, 22, 0, 0, tzinfo=timezone.utc)
    assert sky.sky_state(midnight, *GREENWICH, sunlight=True).phase == "day"
    assert sky.sky_state(midnight, *GREENWICH, sunlight=True).brightness < 6
    noon = datetime(2026, 12, 21, 12, 0, tzinfo=timezone.utc)
    assert sky.sky_state(noon, *GREENWICH, sunlight=False).phase == "night"
    assert sky.sky_state(noon, *GREENWICH, sunlight=None).phase == "day"


def test_start_timeline_moves_the_date_not_the_simulated_seconds():
    from emulator.sim.clock import SimClock

    clock = SimClock(100.0, datetime(2026, 1, 15, 16, 0, tzinfo=timezone.utc))
    before = clock.now()
    night = datetime(2026, 1, 15, 16, 15, tzinfo=timezone.utc)
    clock.start_timeline(night)
    assert clock.now() >= before  # slews and exposures anchored to sim seconds do not jump
    assert clock.timeline0 >= before
    assert abs((clock.utcnow() - night).total_seconds()) < 60  # well within a wall second at 100x
    with clock.at(clock.now() + 3600):
        assert abs((clock.utcnow() - (night + timedelta(hours=1))).total_seconds()) < 60


_TWO_SPAWNED = '''
[[scenario.devices]]
name = "{first}"
type = "{first_type}"
start_method = "spawn"
[[scenario.devices]]
name = "weather"
type = "SafetyMonitor"
start_method = "spawn"
[[scenario.steps]]
do = "get"
device = "{first}"
member = "{member}"
expect = {{ ok = true }}
'''


def _first_step_of(head: str, first: str, first_type: str, member: str):
    """Run a scenario (``head`` plus two spawned device processes, whose set-up outlasts the
    runner's own steps, and one step reading ``first``.``member``): that step's timeline entry."""
    from scenarios.runner import run_scenario
    from scenarios.schema import load_text

    text = head + _TWO_SPAWNED.format(first=first, first_type=first_type, member=member)
    (scenario,) = load_text(text, "t0.toml")
    verdict = run_scenario(scenario, "t0.toml")
    assert verdict.passed, verdict.report()
    return next(e for e in verdict.timeline if member in e.text)


def test_a_scenarios_night_starts_with_its_timeline():
    """start_utc is the UTC at the first step, however long set-up took (two device processes,
    then a step that reads the mount's UTCDate; 100000 simulated s per wall s make it a clock)."""
    head = '''
[[scenario]]
name = "night-starts-at-t0"
description = "the UTC at the timeline's first step is start_utc"
timeout_s = 30
[scenario.emulator]
time_scale = 100000
start_utc = "2026-01-15T16:15:00Z"
'''
    step = _first_step_of(head, "mount", "Telescope", "UTCDate")
    # alpyca hands back a datetime in local time: read its fields, then its zone's offset
    import re

    fields = [int(v) for v in re.search(r"datetime\(([\d, ]+)", step.outcome).group(1).split(",")[:6]]
    seen = datetime(*fields).astimezone(timezone.utc)
    # The mount read at most the step's own duration past start_utc (plus 20 ms of the runner's
    # own bookkeeping on a loaded machine); without the rebase it would also count set-up: two
    # spawned device processes, each a new interpreter, well over 100 ms.
    late = (seen - datetime(2026, 1, 15, 16, 15, tzinfo=timezone.utc)).total_seconds() / 100000
    assert -0.001 <= late <= (step.end - step.start) + 0.02, (late, step)


def test_a_scenarios_weather_timeline_counts_from_its_first_step():
    """A weather timeline's at_s counts from the timeline's first step in a scenario, not from
    the emulator's start: set-up (two spawned device processes, over 100 ms) moves nothing. CloudCover rises 1 % per
    1000 simulated s, i.e. per 10 wall ms at this scale, so its reading is a clock."""
    head = '''
[[scenario]]
name = "weather-starts-at-t0"
description = "a weather timeline counts from the timeline's first step"
timeout_s = 30
[scenario.emulator]
time_scale = 100000
[[scenario.emulator.devices]]
type = "observingconditions"
update_interval_s = 0
timeline = [{ at_s = 0, CloudCover = 0.0 }, { at_s = 100000, CloudCover = 100.0 }]
[[scenario.emulator.devices]]
type = "safetymonitor"
'''
    step = _first_step_of(head, "station", "ObservingConditions", "CloudCover")
    elapsed = float(step.outcome.split("returned ", 1)[1].split(" after")[0]) / 100  # wall s since t = 0
    assert -0.001 <= elapsed <= (step.end - step.start) + 0.02, (elapsed, step)
