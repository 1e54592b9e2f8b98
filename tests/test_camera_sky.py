"""The camera renders what the optical train sees: each physical link, and the links served.

Unit tests check one piece each (render, PSF, fluxes) on the functions that make it; the served
tests drive a whole small observatory through alpyca and fail if the camera stops seeing the
mount, focuser, filter, cover, dome, calibrator or the Sun.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pytest
from alpaca.camera import Camera
from alpaca.covercalibrator import CoverCalibrator
from alpaca.dome import Dome
from alpaca.filterwheel import FilterWheel
from alpaca.focuser import Focuser
from alpaca.telescope import Telescope

from emulator import Emulator
from emulator.sim import images, scene, sky
from emulator.sim.optics import TrainState
from support import wait_for

SEED = 11
W, H = 160, 128


# -- the render, piece by piece ----------------------------------------------------------------------


def _spec(**over) -> images.FrameSpec:
    base = dict(start_x=0, start_y=0, num_x=W, num_y=H, bin_x=1, bin_y=1, duration=10.0, light=True)
    return images.FrameSpec(**{**base, **over})


def _stars(n: int = 25, rate: float = 500.0, trail: tuple[float, float] = (0.0, 0.0), background: float = 2.0) -> images.SkyImage:
    rng = np.random.default_rng(4)
    x, y = rng.uniform(0, W, n), rng.uniform(0, H, n)
    return images.SkyImage(x, y, x + trail[0], y + trail[1], np.full(n, rate), 1.2, background)


def test_subframe_is_the_crop_of_the_full_frame():
    image = _stars()
    for binning in (1, 2):
        full = images.render_sky(image, _spec(num_x=W // binning, num_y=H // binning, bin_x=binning, bin_y=binning), (1, 0, 3), H // binning)
        sub_spec = _spec(start_x=30 // binning, start_y=20 // binning, num_x=70 // binning, num_y=50 // binning, bin_x=binning, bin_y=binning)
        sub = images.render_sky(image, sub_spec, (1, 0, 3), H // binning)
        x0, y0 = 30 // binning, 20 // binning
        assert np.array_equal(sub, full[x0:x0 + 70 // binning, y0:y0 + 50 // binning])


def test_binning_sums_the_light():
    image = _stars(n=0, background=100.0)
    one = images.render_sky(image, _spec(read_noise_adu=0), (1, 0, 1), H)
    two = images.render_sky(image, _spec(num_x=W // 2, num_y=H // 2, bin_x=2, bin_y=2, read_noise_adu=0), (1, 0, 1), H // 2)
    assert np.mean(two) - 1000 == pytest.approx(4 * (np.mean(one) - 1000), rel=0.02)


def test_dark_is_bias_dark_current_and_noise_only():
    frame = images.render_sky(None, _spec(dark_rate=0.5, read_noise_adu=8.0), (1, 0, 1), H)
    assert np.mean(frame) == pytest.approx(1000 + 5.0, abs=0.5)
    assert np.std(frame) == pytest.approx(math.sqrt(64 + 5.0), rel=0.05)


def test_saturation_at_max_adu_and_int32_safe():
    frame = images.render_sky(_stars(rate=1e7), _spec(max_adu=4095), (1, 0, 1), H)
    assert frame.max() == 4095 and frame.min() >= 0
    top = images.render_sky(images.SkyImage(*(np.empty(0),) * 5, 1.0, 1e9), _spec(max_adu=2147483647), (1, 0, 1), H)
    assert top.min() > 2_000_000_000  # clipped just below Int32's end, never wrapped negative


def test_noise_is_seeded_by_exposure():
    a = images.render_sky(_stars(), _spec(), (1, 0, 5), H)
    assert np.array_equal(a, images.render_sky(_stars(), _spec(), (1, 0, 5), H))
    assert not np.array_equal(a, images.render_sky(_stars(), _spec(), (1, 0, 6), H))


def test_a_moving_star_trails_along_its_path():
    def one(dx: float) -> np.ndarray:
        image = images.SkyImage(np.array([50.0]), np.array([60.0]), np.array([50.0 + dx]), np.array([60.0]), np.array([5000.0]), 1.2, 0.0)
        return images.render_sky(image, _spec(read_noise_adu=0), (1, 0, 1), H).astype(float) - 1000

    still, moved = one(0.0), one(30.0)

    def extent(frame):
        cols = np.flatnonzero(frame.sum(axis=1) > 0.05 * frame.sum(axis=1).max())
        return cols.max() - cols.min()

    assert extent(moved) >= extent(still) + 25
    assert moved.sum() == pytest.approx(still.sum(), rel=0.05)  # the same light, spread out
    assert moved.max() < 0.3 * still.max()


def test_psf_v_curve_and_pixel_scale():
    assert scene.pixel_scale_arcsec(1.0, 3.76) == pytest.approx(0.7755, abs=1e-3)
    widths = [scene.psf_fwhm_px(2.0, 0.7755, scene.defocus_fwhm_px(e, 4.0, 5.0, 3.76)) for e in range(-300, 301, 50)]
    assert widths.index(min(widths)) == 6  # sharpest at zero focus error
    assert widths[0] == pytest.approx(widths[-1]) and widths[0] > 3 * widths[6]
    assert scene.psf_fwhm_px(2.0, 0.7755, 1e6) == scene.MAX_FWHM_PX


def test_filter_cloud_and_daylight_change_the_light():
    assert scene.star_rate(np.array([10.0]), 4e9, 0.03, 0.3)[0] == pytest.approx(0.3 * scene.star_rate(np.array([10.0]), 4e9, 0.03, 1.0)[0])
    assert scene.star_rate(np.array([10.0]), 4e9, 0.03, 1.0)[0] == pytest.approx(100 * scene.star_rate(np.array([15.0]), 4e9, 0.03, 1.0)[0])
    clouds = [scene.cloud_transmission(c) for c in (0, 30, 60, 100)]
    assert clouds[0] == 1.0 and all(b < a for a, b in zip(clouds, clouds[1:])) and clouds[-1] < 0.05
    night = scene.sky_rate(sky.sky_brightness(-40), 4e9, 0.0276, 0.6, 1.0)
    day = scene.sky_rate(sky.sky_brightness(30), 4e9, 0.0276, 0.6, 1.0)
    assert night < 1.0 and day > 1e5  # a 1 s daytime frame saturates


def _train(**over) -> TrainState:
    base = dict(
        utc=datetime(2026, 1, 1, tzinfo=timezone.utc), ra_hours=5.5, dec_deg=20.0, alt_deg=60.0, az_deg=180.0,
        focal_length_m=1.0, aperture_m=0.2, aperture_area_m2=0.0276, rotator_deg=0.0, focus_error_steps=0.0,
        step_um=4.0, throughput=1.0, cover_open=True, dome_clear=True, lamp=0.0, seeing_arcsec=2.0,
        cloud_cover_pct=0.0, sky=sky.SkyState(-40.0, -10.0, 0.0, 21.0, "night"),
    )
    return TrainState(**{**base, **over})


def _scene(start: TrainState, end: TrainState | None = None, **over) -> images.SkyImage:
    args = dict(seed=SEED, width=1024, height=1024, pixel_x_um=3.76, pixel_y_um=3.76, zero_point=4e9, flat_rate=2e4, duration=10.0)
    return scene.sky_image(start, end or start, **{**args, **over})


def test_scene_links_filter_cloud_cover_lamp_and_rotator():
    clear = _scene(_train())
    assert clear.rate.size > 50
    assert _scene(_train(throughput=0.3)).rate.sum() == pytest.approx(0.3 * clear.rate.sum(), rel=0.05)
    assert _scene(_train(cloud_cover_pct=70)).rate.sum() < 0.4 * clear.rate.sum()
    closed = _scene(_train(cover_open=False, lamp=0.5))
    assert closed.rate.size == 0 and closed.background == pytest.approx(1e4)
    assert _scene(_train(dome_clear=False)).rate.size == 0
    turned = _scene(_train(rotator_deg=90.0))
    # +y (north) at angle 0 becomes +x turned by 90 deg about the centre: the brightest star shows it
    i, j = np.argmax(clear.rate), np.argmax(turned.rate)
    assert (turned.x0[j] - 512, turned.y0[j] - 512) == pytest.approx((clear.y0[i] - 512, -(clear.x0[i] - 512)), abs=0.01)


def test_untracked_stars_trail_west_at_the_sidereal_rate():
    start = _train()
    end = _train(ra_hours=start.ra_hours + 10.0 / 3600.0 * 1.0027)  # 10 s later the sky has moved on
    image = _scene(start, end)
    drift = np.median(image.x1 - image.x0)
    assert drift == pytest.approx(150.0 * math.cos(math.radians(20.0)) / 0.7755, rel=0.03)


# -- served: a small observatory through alpyca -----------------------------------------------------------

SW, SH = 192, 160


def _observatory(**over) -> Emulator:
    devices = {
        "camera": {"width": SW, "height": SH, "readout_time_s": 0},
        "telescope": {"tracking": True},
        "covercalibrator": {"cover_initial": "open", "warmup_s": 0, "cover_travel_s": 1},
        "dome": {"shutter_initial": "open", "can_set_azimuth": False},
        "focuser": {"temperature_swing_c": 0.0},
        "filterwheel": {"slot_time_s": 0.1},
        "observingconditions": {"pinned": {"CloudCover": 0.0, "StarFWHM": 2.0}},
    }
    for kind, options in over.items():
        devices[kind] = {**devices[kind], **options}
    config = {"emulator": {"sunlight": False}, "devices": [{"type": k, "connected": True, **v} for k, v in devices.items()]}
    return Emulator(config, time_scale=1000, seed=SEED)


def _bright_star(near_dec: float = 40.0) -> tuple[float, float]:
    """RA (hours) and Dec of a star of V 8.5-9.5 near the meridian-ish declination (unsaturated in 1 s)."""
    stars = sky.stars_near(SEED, 90.0, near_dec, 3.0)
    pick = np.flatnonzero((stars.mag > 8.5) & (stars.mag < 9.5))[0]
    return stars.ra[pick] / 15.0, float(stars.dec[pick])


def _point(tel: Telescope, ra: float, dec: float) -> None:
    tel.SlewToCoordinatesAsync(ra, dec)
    wait_for(lambda: not tel.Slewing, what="the slew to end", timeout=20)


def _point_up(tel: Telescope) -> tuple[float, float]:
    """Point at a bright star high in the sky: the emulator's clock is today's, so aim by sidereal time."""
    ra, dec = _bright_star()
    tel.SiteLongitude = 0.0
    lst_needed = ra  # star on the meridian
    tel.SiteLongitude = ((lst_needed - tel.SiderealTime) * 15.0 + 540.0) % 360.0 - 180.0
    _point(tel, ra, dec)
    assert tel.Altitude > 60
    return ra, dec


def _expose(cam: Camera, seconds: float = 1.0, light: bool = True) -> np.ndarray:
    cam.StartExposure(seconds, light)
    wait_for(lambda: cam.ImageReady, what="the exposure to finish", timeout=20, interval=0.01)
    return np.array(cam.ImageArray, dtype=float)


def _signal(frame: np.ndarray, mask: np.ndarray) -> float:
    return float(np.sum(frame[mask] - np.median(frame)))


def _shift(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """How far b's pattern lies from a's (pixels, by cross-correlation)."""
    fa = np.fft.rfft2(np.clip(a - np.median(a), 0, None))
    fb = np.fft.rfft2(np.clip(b - np.median(b), 0, None))
    cc = np.fft.irfft2(np.conj(fa) * fb, s=a.shape)
    i, j = np.unravel_index(np.argmax(cc), cc.shape)
    return (i if i <= a.shape[0] // 2 else i - a.shape[0]), (j if j <= a.shape[1] // 2 else j - a.shape[1])


def _fwhm_at_centre(frame: np.ndarray, box: int = 30) -> float:
    """FWHM of the star at the frame's centre, from its flux and peak (a Gaussian's peak is
    flux / (2 pi sigma^2)): robust against the noise that spoils moments."""
    cx, cy = SW // 2, SH // 2
    cut = frame[cx - box:cx + box, cy - box:cy + box] - np.median(frame)
    return 2.3548 * math.sqrt(cut.sum() / (2.0 * math.pi * cut.max()))


def test_same_pointing_same_stars_and_an_offset_moves_them():
    with _observatory() as emu:
        tel, cam = Telescope(emu.address, 0), Camera(emu.address, 0)
        ra, dec = _point_up(tel)
        a = _expose(cam, 5.0)
        b = _expose(cam, 5.0)
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.8
        scale = scene.pixel_scale_arcsec(1.0, 3.76)
        _point(tel, ra, dec + 24 * scale / 3600.0)  # 24 pixels north
        c = _expose(cam, 5.0)
        dx, dy = _shift(a, c)
        assert abs(dx) <= 2 and dy == pytest.approx(-24, rel=0.25)  # north up: the stars go down
        _point(tel, ra + 30 * scale / 3600.0 / 15.0 / math.cos(math.radians(dec)), dec)  # 30 pixels east
        dx, dy = _shift(a, _expose(cam, 5.0))
        assert dx == pytest.approx(30, rel=0.25) and abs(dy) <= 2  # east left: the stars go right


def test_autofocus_sweep_is_sharpest_at_best_focus_plus_the_filter_offset():
    wheel = {"names": ["Luminance", "Red"], "focus_offsets": [0, 120], "throughputs": [1.0, 1.0]}
    with _observatory(focuser={"best_focus_step": 24120}, filterwheel=wheel) as emu:
        tel, cam, foc, fw = Telescope(emu.address, 0), Camera(emu.address, 0), Focuser(emu.address, 0), FilterWheel(emu.address, 0)
        _point_up(tel)

        def sweep(centre: int) -> tuple[list[int], list[float]]:
            positions = [centre + 40 * k for k in range(-4, 5)]
            widths = []
            for position in positions:
                foc.Move(position)
                wait_for(lambda: not foc.IsMoving, what="the focuser to stop", timeout=20)
                widths.append(_fwhm_at_centre(_expose(cam, 1.0)))
            return positions, widths

        positions, widths = sweep(24120)
        assert positions[widths.index(min(widths))] == 24120, widths
        assert min(widths[0], widths[-1]) * 2 / 3 >= min(widths)  # the ends at most two thirds as sharp
        fw.Position = 1
        wait_for(lambda: fw.Position == 1, what="the wheel to stop", timeout=20)
        positions, widths = sweep(24120 + 80)
        assert positions[widths.index(min(widths))] == 24120 + 120, widths  # the filter's focus offset


def test_cover_closed_dark_and_flats_follow_the_lamp():
    with _observatory() as emu:
        tel, cam, cc = Telescope(emu.address, 0), Camera(emu.address, 0), CoverCalibrator(emu.address, 0)
        _point_up(tel)
        open_frame = _expose(cam, 5.0)
        stars = open_frame > np.median(open_frame) + 60
        assert _signal(open_frame, stars) > 5000
        cc.CloseCover()
        wait_for(lambda: cc.CoverState.value == 1, what="the cover to close", timeout=20)
        closed = _expose(cam, 5.0)
        assert _signal(closed, stars) < 0.1 * _signal(open_frame, stars)
        assert np.mean(closed) == pytest.approx(1000, abs=3)  # bias and noise only
        levels = []
        for brightness in (50, 100, 200):
            cc.CalibratorOn(brightness)
            wait_for(lambda: cc.CalibratorState.value == 3, what="the lamp to be ready", timeout=20)
            levels.append(np.mean(_expose(cam, 1.0)) - 1000)
        assert levels[1] == pytest.approx(2 * levels[0], rel=0.03) and levels[2] == pytest.approx(4 * levels[0], rel=0.03)
        assert levels[2] == pytest.approx(20000 * 200 / 255, rel=0.03)  # flat_rate_e_s at this brightness


def test_filter_changes_the_flux():
    with _observatory() as emu:
        tel, cam, fw = Telescope(emu.address, 0), Camera(emu.address, 0), FilterWheel(emu.address, 0)
        _point_up(tel)
        lum = _expose(cam, 2.0)
        stars = lum > np.median(lum) + 60
        fw.Position = 1  # Red: 0.3 of the light
        wait_for(lambda: fw.Position == 1, what="the wheel to stop", timeout=20)
        red = _expose(cam, 2.0)
        assert _signal(red, stars) == pytest.approx(0.3 * _signal(lum, stars), rel=0.2)


def test_dome_turned_away_darkens_the_frame():
    with _observatory(dome={"can_set_azimuth": True, "slit_width_deg": 10.0}) as emu:
        tel, cam, dome = Telescope(emu.address, 0), Camera(emu.address, 0), Dome(emu.address, 0)
        _point_up(tel)
        dome.SlewToAzimuth(tel.Azimuth)
        wait_for(lambda: not dome.Slewing, what="the dome to turn", timeout=20)
        facing = _expose(cam, 5.0)
        stars = facing > np.median(facing) + 60
        dome.SlewToAzimuth((tel.Azimuth + 90.0) % 360.0)  # the line of sight ~11 deg off a 10 deg slit
        wait_for(lambda: not dome.Slewing, what="the dome to turn", timeout=20)
        away = _expose(cam, 5.0)
        assert _signal(away, stars) < 0.1 * _signal(facing, stars)
        dome.SlewToAzimuth(tel.Azimuth)
        wait_for(lambda: not dome.Slewing, what="the dome to turn back", timeout=20)
        assert _signal(_expose(cam, 5.0), stars) > 0.8 * _signal(facing, stars)
        dome.CloseShutter()
        wait_for(lambda: dome.ShutterStatus.value == 1, what="the shutter to close", timeout=20)
        assert _signal(_expose(cam, 5.0), stars) < 0.1 * _signal(facing, stars)


def test_sky_level_rises_with_the_sun_through_twilight():
    with _observatory() as emu:
        emu.registry.observatory.sunlight = None  # follow the Sun
        tel, cam = Telescope(emu.address, 0), Camera(emu.address, 0)
        tel.Tracking = False
        tel.SlewToAltAzAsync(180.0, 80.0)
        wait_for(lambda: not tel.Slewing, what="the slew to end", timeout=20)
        lat = math.radians(tel.SiteLatitude)
        levels, seen = [], []
        for target_alt in (-16.0, -12.0, -8.0, -4.0, -1.0):
            # the longitude where the setting Sun stands at target_alt now (sim time runs fast: recompute)
            utc = emu.registry.clock.utcnow()
            sun_ra, sun_dec = sky.sun_radec(utc)
            d = math.radians(sun_dec)
            hour_angle = math.degrees(math.acos((math.sin(math.radians(target_alt)) - math.sin(lat) * math.sin(d)) / (math.cos(lat) * math.cos(d))))
            tel.SiteLongitude = (hour_angle + sun_ra - sky.gmst_deg(utc) + 540.0) % 360.0 - 180.0
            levels.append(np.mean(_expose(cam, 5.0)))
            seen.append(emu.registry.get("camera", 0)._last.train_start.sky.sun_alt)
        assert seen == pytest.approx([-16.0, -12.0, -8.0, -4.0, -1.0], abs=0.5)
        assert all(b > a for a, b in zip(levels, levels[1:])), levels


def test_daylight_saturates_and_colour_sensors_see_the_same_sky():
    for sensor, rank in (("mono", 2), ("colour", 3), ("rggb", 2)):
        with _observatory(camera={"sensor": sensor}) as emu:
            emu.registry.observatory.sunlight = True
            tel, cam = Telescope(emu.address, 0), Camera(emu.address, 0)
            _point_up(tel)
            day = _expose(cam, 1.0)
            assert day.ndim == rank and day.shape[:2] == (SW, SH)
            assert np.median(day) == 65535  # a daytime sky fills the wells in a second
            emu.registry.observatory.sunlight = False
            assert np.median(_expose(cam, 1.0)) < 1100


def test_two_emulator_processes_see_the_same_stars(tmp_path):
    from test_cli import spawn, stop, wait_for_url

    config = tmp_path / "obs.toml"
    config.write_text(
        f"[emulator]\nseed = {SEED}\nsunlight = false\ntime_scale = 1000\n"
        f"[[devices]]\ntype = \"camera\"\nwidth = {SW}\nheight = {SH}\nreadout_time_s = 0\nconnected = true\n"
        "[[devices]]\ntype = \"telescope\"\ntracking = true\nconnected = true\n"
    )
    proc = spawn("--config", str(config), "--port", "0")
    try:
        url = wait_for_url(proc)
        same = {"emulator": {"sunlight": False}, "devices": [  # the file's config, in this process
            {"type": "camera", "width": SW, "height": SH, "readout_time_s": 0, "connected": True},
            {"type": "telescope", "tracking": True, "connected": True},
        ]}
        with Emulator(same, time_scale=1000, seed=SEED) as emu:
            frames = []
            for address in (url.removeprefix("http://"), emu.address):
                tel, cam = Telescope(address, 0), Camera(address, 0)
                _point_up(tel)
                frames.append(_expose(cam, 5.0))
        assert np.corrcoef(frames[0].ravel(), frames[1].ravel())[0, 1] > 0.8
    finally:
        stop(proc)


def test_best_focus_drifts_with_the_focuser_temperature():
    from emulator.sim.clock import SimClock
    from emulator.sim.devices.focuser import Focuser, FocuserConfig

    clock = SimClock()
    foc = Focuser(FocuserConfig(best_focus_step=20000, focus_drift_steps_per_c=-30.0, temperature_swing_c=5.0), clock, seed=2)
    for t in (0.0, 1000.0, 2500.0):
        with clock.at(t):
            assert foc.best_focus() == pytest.approx(20000 - 30.0 * (foc.temperature() - 12.0), abs=0.1)
    with clock.at(0.0):
        a = foc.best_focus()
    with clock.at(1800.0):
        assert foc.best_focus() != pytest.approx(a, abs=1.0)


def test_optics_config_errors_name_the_key():
    from emulator.config import ConfigError

    with pytest.raises(ConfigError, match="throughputs"):
        Emulator({"devices": [{"type": "filterwheel", "names": ["L", "R"], "focus_offsets": [0, 0], "throughputs": [1.0]}]})
    with pytest.raises(ConfigError, match="throughputs"):
        Emulator({"devices": [{"type": "filterwheel", "names": ["L"], "focus_offsets": [0], "throughputs": [1.5]}]})
    with pytest.raises(ConfigError, match="best_focus_step"):
        Emulator({"devices": [{"type": "focuser", "max_step": 1000, "best_focus_step": 2000}]})
    with pytest.raises(ConfigError, match="zero_point_e_s_m2"):
        Emulator({"devices": [{"type": "camera", "zero_point_e_s_m2": -1}]})


def test_without_a_telescope_the_camera_keeps_its_fixed_field():
    config = {"devices": [{"type": "camera", "width": 64, "height": 48, "readout_time_s": 0, "connected": True}]}
    with Emulator(config, time_scale=1000, seed=3) as emu:
        frame = _expose(Camera(emu.address, 0), 1.0)
    stars = images.make_star_field(3, 0, 64, 48, 150, 3.0, 20000.0)
    expected = images.render_frame(stars, images.FrameSpec(0, 0, 64, 48, 1, 1, 1.0, True), images.exposure_rng(3, 0, 1))
    assert np.array_equal(frame, expected)


def test_expect_image_measures_and_refuses_what_it_cannot_check():
    from scenarios.schema import ScenarioError, load_text
    from scenarios.steps.images import measure

    frame = np.full((64, 64), 1000.0)
    xs, ys = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
    sigma = 2.0
    frame += 5000.0 * np.exp(-((xs - 30) ** 2 + (ys - 40) ** 2) / (2 * sigma**2))
    assert measure(frame, "median") == 1000.0
    assert measure(frame, "star_fwhm") == pytest.approx(2.3548 * sigma, rel=0.02)
    assert measure(frame, "star_signal") == pytest.approx(5000.0 * 2 * math.pi * sigma**2, rel=0.02)
    head = '[[scenario]]\nname = "x"\ndescription = "a check of the checks"\n[[scenario.devices]]\nname = "dev"\ntype = "{t}"\n' \
           '[[scenario.steps]]\ndo = "expect_image"\ndevice = "dev"\nmeasure = "mean"\n{bounds}\n'
    with pytest.raises(ScenarioError, match="not a camera"):
        load_text(head.format(t="Focuser", bounds="min = 1"))
    with pytest.raises(ScenarioError, match="min, max or both"):
        load_text(head.format(t="Camera", bounds=""))


def test_start_utc_fixes_the_sky_and_names_a_bad_value():
    from emulator.config import ConfigError

    config = {"emulator": {"start_utc": "2026-01-15T22:00:00"}, "devices": [{"type": "telescope", "connected": True}]}
    with Emulator(config) as emu:
        utc = emu.registry.clock.utcnow()
        assert utc.tzinfo is not None and abs((utc - datetime(2026, 1, 15, 22, tzinfo=timezone.utc)).total_seconds()) < 60
        assert Telescope(emu.address, 0).SiderealTime == pytest.approx(sky.gmst_deg(utc) / 15.0, abs=0.01)
    with pytest.raises(ConfigError, match="start_utc"):
        Emulator({"emulator": {"start_utc": "tonight"}})
