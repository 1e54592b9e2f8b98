"""Profiles: shipped TOML data, listed, served by name, and layered under a user's config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests

from emulator import Emulator, profiles
from emulator.config import ConfigError, config_from_dict, default_config, load_config
from emulator.sim.devices import DEVICE_CLASSES
from test_cli import STOP_DEADLINE, read_until, spawn

REPO = Path(__file__).resolve().parents[1]


def test_shipped_profiles_are_data_files_with_descriptions():
    assert {"default", "omnisim"} <= set(profiles.names())
    folder = REPO / "emulator" / "profiles"
    assert sorted(p.stem for p in folder.glob("*.toml")) == profiles.names()
    for name in profiles.names():
        assert profiles.describe(name), name
        config_from_dict({"profile": name}, f"profile {name}")  # every shipped profile validates


def test_default_profile_is_the_default_device_set():
    cfg = default_config()
    assert [(d.type, d.number) for d in cfg.devices] == [(t, 0) for t in DEVICE_CLASSES]
    assert cfg.devices == [cls.config_class() for cls in DEVICE_CLASSES.values()]


def test_a_config_layers_over_its_profile(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(
        'profile = "omnisim"\n[emulator]\nseed = 7\n'
        '[[devices]]\ntype = "focuser"\nmax_step = 9000\nmax_increment = 9000\ninitial_position = 10\n'
        '[[devices]]\ntype = "focuser"\nnumber = 1\n',
        encoding="utf-8",
    )
    cfg = load_config(path)
    assert cfg.emulator.seed == 7 and cfg.emulator.server_name == "Alpaca Simulators"  # replaced / kept
    focusers = {d.number: d for d in cfg.devices if d.type == "focuser"}
    assert focusers[0].max_step == 9000 and focusers[0].name == "Alpaca Focuser Simulator"  # changed / kept
    assert focusers[0].step_size_um == 20.0 and focusers[0].synchronous is False
    assert focusers[1].name is None  # added, every option at its default
    assert len(cfg.devices) == 11


def test_a_mistake_in_the_layer_names_the_file_and_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('profile = "omnisim"\n[[devices]]\ntype = "focuser"\nmax_stepp = 1\n', encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and "max_stepp: unknown key" in str(err.value)


def test_an_unknown_profile_names_the_valid_ones(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text('profile = "omnisimm"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert str(path) in text and "profile: unknown profile 'omnisimm'" in text and "default, omnisim" in text
    with pytest.raises(ConfigError, match="unknown profile 'nope'"):
        Emulator(profile="nope")


def test_two_profiles_at_once_are_refused(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text('profile = "default"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="is 'default', but profile 'omnisim' was asked for too"):
        Emulator(path, profile="omnisim")


def test_emulator_profile_with_a_dict_over_it():
    with Emulator({"devices": [{"type": "dome", "can_park": False, "connected": True}]}, profile="omnisim") as emu:
        body = requests.get(f"{emu.url}/api/v1/dome/0/canpark", timeout=10).json()
        assert body["Value"] is False
        assert requests.get(f"{emu.url}/api/v1/dome/0/name", timeout=10).json()["Value"] == "Alpaca Dome Simulator"


def test_layer_rules():
    base = {"emulator": {"seed": 1, "time_scale": 2}, "devices": [{"type": "camera"}, {"type": "camera", "number": 1, "width": 5}],
            "faults": [{"name": "a"}]}
    over = {"emulator": {"seed": 3}, "devices": [{"type": "camera", "number": 1, "height": 6}, {"type": "dome"}], "faults": [{"name": "b"}]}
    out = profiles.layer(base, over)
    assert out["emulator"] == {"seed": 3, "time_scale": 2}
    assert out["devices"] == [{"type": "camera"}, {"type": "camera", "number": 1, "width": 5, "height": 6}, {"type": "dome"}]
    assert out["faults"] == [{"name": "a"}, {"name": "b"}]
    assert base["devices"][1] == {"type": "camera", "number": 1, "width": 5}  # the profile itself is untouched


def test_cli_lists_profiles_and_serves_one():
    out = subprocess.run([sys.executable, "-m", "emulator.cli", "--list-profiles"], capture_output=True, text=True, timeout=30, cwd=REPO)
    assert out.returncode == 0
    assert [line.split()[0] for line in out.stdout.splitlines()] == profiles.names()
    proc = spawn("--port", "0", "--no-discovery", "--profile", "omnisim")
    try:
        url = read_until(proc, r"listening on (http://127\.0\.0\.1:\d+)").group(1)
        assert requests.get(f"{url}/api/v1/telescope/0/name", timeout=10).json()["Value"] == "Alpaca Telescope Simulator"
    finally:
        proc.terminate()
        proc.communicate(timeout=STOP_DEADLINE)
    bad = subprocess.run([sys.executable, "-m", "emulator.cli", "--profile", "nope"], capture_output=True, text=True, timeout=30, cwd=REPO)
    assert bad.returncode == 2 and "unknown profile 'nope'; valid profiles: alpaca-simulators, default, omnisim" in bad.stderr
