"""Rules: validation, triggers, determinism across processes, composition, lifetime."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time

import pytest
import requests
from alpaca.exceptions import NotConnectedException
from alpaca.safetymonitor import SafetyMonitor

from emulator import Emulator
from emulator.faults import FaultRuleError, request_info
from support import wait_for

CONFIG = {"devices": [{"type": "safetymonitor", "connected": True}, {"type": "focuser"}]}
ERR = {"kind": "ascom_error", "number": 0x407}


@pytest.fixture
def emu():
    with Emulator(CONFIG) as e:
        yield e


def _fired_sequence(emu: Emulator, n: int) -> list[bool]:
    """Call IsSafe n times with alpyca; True where the injected NotConnected came back."""
    mon = SafetyMonitor(emu.address, 0)
    out = []
    for _ in range(n):
        try:
            mon.IsSafe
            out.append(False)
        except NotConnectedException:
            out.append(True)
    return out


# -- validation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rule, field",
    [
        ({"action": {"kind": "latency", "ms": -5}}, "action.ms"),
        ({"action": {"kind": "latency"}}, "action.ms"),
        ({"action": {"kind": "explode"}}, "action.kind"),
        ({"action": {}}, "action.kind"),
        ({"match": {"membr": "issafe"}, "action": ERR}, "match.membr"),
        ({"match": {"device_type": "telescop"}, "action": ERR}, "match.device_type"),
        ({"action": ERR, "trigger": {"probability": 1.5}}, "trigger.probability"),
        ({"action": {"kind": "drop", "phase": "later"}}, "action.phase"),
        ({"action": {"kind": "ascom_error", "number": "0xZZ"}}, "action.number"),
        ({"match": {}}, "action"),
    ],
)
def test_bad_rule_names_the_field(emu, rule, field):
    with pytest.raises(FaultRuleError) as info:
        emu.faults.add(rule)
    assert isinstance(info.value, ValueError)
    assert field in [f for f, _ in info.value.errors], info.value.errors
    assert field in str(info.value)
    assert len(emu.faults) == 0


def test_discovery_kinds_only_on_discovery(emu):
    with pytest.raises(FaultRuleError, match="discovery"):
        emu.faults.add(match={"device_type": "camera"}, action={"kind": "discovery_silent"})
    with pytest.raises(FaultRuleError, match="discovery"):
        emu.faults.add(match={"device_type": "discovery"}, action={"kind": "drop"})


def test_add_forms_context_manager_remove_clear(emu):
    a = emu.faults.add({"name": "a", "action": ERR, "match": {"member": "IsSafe"}})
    b = emu.faults.add(match={"member": "name"}, action="bad_json", name="b")
    assert isinstance(a.id, str) and a.id != b.id
    assert [r.id for r in emu.faults.list()] == [a.id, b.id]
    assert _fired_sequence(emu, 1) == [True] and a.fired == 1  # member matches case-insensitively
    emu.faults.remove(a.id)
    with pytest.raises(KeyError):
        emu.faults.remove(a.id)
    with emu.faults.add(match={"member": "issafe"}, action=ERR) as c:
        assert _fired_sequence(emu, 2) == [True, True]
        assert c.fired == 2
    assert [r.id for r in emu.faults.list()] == [b.id]  # removing one rule (either way) keeps the others
    emu.faults.clear()
    assert emu.faults.list() == []


# -- triggers ---------------------------------------------------------------------------------------


def test_after(emu):
    emu.faults.add(match={"member": "issafe"}, action=ERR, trigger={"after": 2})
    assert _fired_sequence(emu, 5) == [False, False, True, True, True]


def test_count(emu):
    rule = emu.faults.add(match={"member": "issafe"}, action=ERR, trigger={"count": 2})
    assert _fired_sequence(emu, 4) == [True, True, False, False]
    assert rule.fired == 2 and rule.matched == 4


def test_every(emu):
    emu.faults.add(match={"member": "issafe"}, action=ERR, trigger={"every": 3})
    assert _fired_sequence(emu, 7) == [False, False, True, False, False, True, False]


def test_after_every_count_together(emu):
    emu.faults.add(match={"member": "issafe"}, action=ERR, trigger={"after": 1, "every": 2, "count": 2})
    assert _fired_sequence(emu, 8) == [False, False, True, False, True, False, False, False]


def test_probability_is_the_documented_seeded_sequence(emu):
    emu.faults.add(match={"member": "issafe"}, action=ERR, trigger={"probability": 0.4, "seed": 1234})
    rng = random.Random(1234)
    expected = [rng.random() < 0.4 for _ in range(30)]
    assert _fired_sequence(emu, 30) == expected
    assert 0 < sum(expected) < 30


def test_probability_default_seed_is_the_emulator_seed():
    seqs = []
    for _ in range(2):
        with Emulator(CONFIG, seed=99) as emu:
            emu.faults.add(match={"member": "issafe"}, action=ERR, trigger={"probability": 0.5})
            seqs.append(_fired_sequence(emu, 20))
            assert emu.faults.list()[0].seed == 99
    assert seqs[0] == seqs[1]
    rng = random.Random(99)  # the emulator's seed itself, not merely some fixed default
    assert seqs[0] == [rng.random() < 0.5 for _ in range(20)]


_CHILD = """
import json, sys
from emulator import Emulator
from alpaca.safetymonitor import SafetyMonitor
from alpaca.exceptions import NotConnectedException
with Emulator({"devices": [{"type": "safetymonitor", "connected": True}]}) as emu:
    emu.faults.add(match={"member": "issafe"}, action={"kind": "ascom_error", "number": 1031},
                   trigger={"probability": 0.3, "seed": 77})
    mon = SafetyMonitor(emu.address, 0)
    out = []
    for _ in range(25):
        try:
            mon.IsSafe
            out.append(False)
        except NotConnectedException:
            out.append(True)
print(json.dumps(out))
"""


def test_same_seed_same_sequence_in_another_process(emu):
    emu.faults.add(match={"member": "issafe"}, action=ERR, trigger={"probability": 0.3, "seed": 77})
    here = _fired_sequence(emu, 25)
    child = subprocess.run(
        [sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=50, env={"PYTHONHASHSEED": "12345"}
    )
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout.strip().splitlines()[-1]) == here


def test_window_on_the_simulation_clock():
    with Emulator(CONFIG, time_scale=100) as emu:
        # active from 50 to 150 simulated s after creation: 0.5 s to 1.5 s of wall time
        rule = emu.faults.add(match={"member": "issafe"}, action=ERR, trigger={"start_s": 50, "duration_s": 100})
        mon = SafetyMonitor(emu.address, 0)

        def fires() -> bool:
            try:
                mon.IsSafe
                return False
            except NotConnectedException:
                return True

        assert fires() is False
        seen = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            age = emu.clock.now() - rule.created_s
            f = fires()
            seen.append((age, f))
            if age > 200:
                break
            time.sleep(0.05)
        assert any(f for _, f in seen), "never fired inside its window"
        assert all(not f for age, f in seen if age < 49 or age > 151)
        assert not fires()


def test_probability_draws_once_per_candidate(emu):
    """after/every choose the candidates; only a candidate draws from the seeded sequence, so
    adding `every` does not shift which draws decide."""
    emu.faults.add(match={"member": "issafe"}, action=ERR, trigger={"after": 1, "every": 2, "probability": 0.5, "seed": 5})
    rng = random.Random(5)
    expected = [n > 1 and (n - 1) % 2 == 0 and rng.random() < 0.5 for n in range(1, 25)]
    assert _fired_sequence(emu, 24) == expected
    assert sum(expected) >= 2


def test_window_counts_from_the_rules_creation():
    """The window starts when the rule is added, not when the emulator started. Decided right
    after the add, in this thread: 0.5 wall s of margin either way at this time scale."""
    with Emulator(CONFIG, time_scale=10000) as emu:
        wait_for(lambda: emu.clock.now() > 12000, what="the clock to pass 12000 simulated s", timeout=10)
        info = request_info("GET", "/api/v1/safetymonitor/0/issafe")
        later = emu.faults.add(match={"member": "issafe"}, action=ERR, trigger={"start_s": 5000})
        now = emu.faults.add(match={"member": "issafe"}, action=ERR, trigger={"duration_s": 5000})
        plan = emu.faults.evaluate(info)
        assert plan is not None and plan.fired == [now.id]
        assert later.matched == 0 and now.fired == 1


# -- composition ------------------------------------------------------------------------------------


def test_latencies_add_then_first_terminating_rule_wins(emu):
    l1 = emu.faults.add(name="slow1", match={"member": "issafe"}, action={"kind": "latency", "ms": 150})
    err = emu.faults.add(name="err", match={"member": "issafe"}, action={"kind": "ascom_error", "number": 0x407})
    l2 = emu.faults.add(name="slow2", action={"kind": "latency", "ms": 150})
    late = emu.faults.add(name="late", match={"device_type": "safetymonitor"}, action={"kind": "http_status", "status": 500})
    t = time.monotonic()
    with pytest.raises(NotConnectedException):
        SafetyMonitor(emu.address, 0).IsSafe
    assert time.monotonic() - t >= 0.3
    assert (l1.fired, err.fired, l2.fired, late.fired) == (1, 1, 1, 0)
    assert late.matched == 1  # it saw the request, but was shadowed
    (entry,) = emu.traffic.entries(member="issafe")
    assert entry.rules == ["slow1", "err", "slow2"]
    # on another member only the rules that match it apply
    r = requests.get(emu.url + "/api/v1/safetymonitor/0/name", timeout=5)
    assert r.status_code == 500


def test_match_by_device_number_verb_and_path():
    cfg = {"devices": [{"type": "focuser", "number": 0}, {"type": "focuser", "number": 1}]}
    with Emulator(cfg) as emu:
        emu.faults.add(match={"device_type": "focuser", "device_number": 1, "verb": "get"}, action={"kind": "http_status", "status": 503})
        emu.faults.add(match={"path": "/management/*/configured*"}, action={"kind": "http_status", "status": 502})
        assert requests.get(emu.url + "/api/v1/focuser/0/name", timeout=5).status_code == 200
        assert requests.get(emu.url + "/api/v1/focuser/1/name", timeout=5).status_code == 503
        assert requests.put(emu.url + "/api/v1/focuser/1/connected", data={"Connected": "true"}, timeout=5).status_code == 200
        assert requests.get(emu.url + "/management/v1/configureddevices", timeout=5).status_code == 502
        assert requests.get(emu.url + "/management/v1/description", timeout=5).status_code == 200


def test_management_matchable_by_device_type(emu):
    emu.faults.add(match={"device_type": "management", "member": "apiversions"}, action={"kind": "bad_json"})
    r = requests.get(emu.url + "/management/apiversions", timeout=5)
    with pytest.raises(ValueError):
        r.json()


def test_control_api_is_never_faulted(emu):
    emu.faults.add(action={"kind": "drop"})  # matches every HTTP request...
    r = requests.get(emu.url + "/emulator/v1/faults", timeout=5)  # ...but not the control API
    assert r.status_code == 200 and len(r.json()) == 1
    assert requests.delete(emu.url + "/emulator/v1/faults", timeout=5).json() == {"removed": 1}
    assert requests.get(emu.url + "/management/apiversions", timeout=5).status_code == 200


def test_rules_from_toml_config(tmp_path):
    cfg = tmp_path / "faults.toml"
    cfg.write_text(
        """
[[devices]]
type = "safetymonitor"
connected = true

[[faults]]
name = "flaky cable"
match = { device_type = "safetymonitor", member = "issafe" }
action = { kind = "ascom_error", number = 0x407, message = "cable" }
trigger = { every = 2 }
"""
    )
    with Emulator(cfg) as emu:
        (rule,) = emu.faults.list()
        assert rule.name == "flaky cable"
        assert _fired_sequence(emu, 4) == [False, True, False, True]
        emu.reset()
        assert emu.faults.list() == []


def test_bad_fault_in_toml_names_the_key(tmp_path):
    from emulator.config import ConfigError

    cfg = tmp_path / "bad.toml"
    cfg.write_text('[[faults]]\naction = { kind = "latency", ms = "soon" }\n')
    with pytest.raises(ConfigError, match=r"faults\[0\]\.action\.ms"):
        Emulator(cfg)


def test_every_action_kind_is_a_registered_unit():
    """Each kind is one class: its model, its stage, and what it does there; nobody lists kinds."""
    from emulator.faults import ACTION_KINDS
    from emulator.faults.actions import REGISTRY, STAGES, FaultAction

    assert sorted(REGISTRY) == sorted(ACTION_KINDS)
    for kind, cls in REGISTRY.items():
        assert cls.stage in STAGES, kind
        if cls.terminal:
            assert cls.apply is not FaultAction.apply, kind
        else:  # a non-terminal kind shapes the plan (a delay, a rate cap)
            assert cls.shape is not FaultAction.shape, kind
    assert [k for k in ACTION_KINDS if not REGISTRY[k].terminal] == ["latency", "bandwidth"]
