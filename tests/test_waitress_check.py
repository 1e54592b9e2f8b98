"""The start-up self-check of the waitress internals the socket layer relies on.

A waitress release without one of them must stop the emulator before it serves, with a message
that names the missing attribute and the waitress version: simulated here by deleting an
attribute from the real waitress class (monkeypatch puts it back).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from waitress.channel import HTTPChannel
from waitress.task import WSGITask

from emulator import Emulator
from emulator.serve import waitress_check
from emulator.serve.waitress_check import WaitressChanged, check_waitress, missing_internals, waitress_version
from test_cli import REPO


def test_the_installed_waitress_has_everything():
    assert missing_internals() == []
    check_waitress()


def test_every_listed_internal_is_real_on_this_waitress():
    """The list names things that exist, so the check cannot pass by looking for nothing."""
    for owner, attr, _ in waitress_check.CLASS_ATTRIBUTES:
        assert hasattr(owner, attr), (owner, attr)
    for owner, attr, _ in waitress_check.INSTANCE_ATTRIBUTES:
        assert hasattr(owner, attr) or waitress_check._used_in_code(owner, attr), (owner, attr)
    assert not waitress_check._used_in_code(HTTPChannel, "no_such_attribute_anywhere")


@pytest.mark.parametrize("owner, attr", [(HTTPChannel, "_flush_some"), (WSGITask, "get_environment"), (HTTPChannel, "received")])
def test_a_missing_method_is_named_with_the_version(monkeypatch, owner, attr):
    monkeypatch.delattr(owner, attr)
    with pytest.raises(WaitressChanged) as info:
        check_waitress()
    message = str(info.value)
    assert f"{owner.__module__}.{owner.__qualname__}.{attr}" in message
    assert f"waitress {waitress_version()} lacks" in message
    assert info.value.missing and len(info.value.missing) == 1


def test_a_missing_instance_attribute_and_request_attribute_are_named(monkeypatch):
    monkeypatch.setattr(waitress_check, "INSTANCE_ATTRIBUTES",
                        waitress_check.INSTANCE_ATTRIBUTES + ((HTTPChannel, "renamed_lock", "a lock"),))
    monkeypatch.setattr(waitress_check, "REQUEST_ATTRIBUTES", waitress_check.REQUEST_ATTRIBUTES + ("renamed_body",))
    missing = missing_internals()
    assert any("HTTPChannel.renamed_lock" in m and "set by waitress on each instance" in m for m in missing), missing
    assert any("HTTPRequestParser.renamed_body" in m for m in missing), missing
    assert len(missing) == 2


def test_the_emulator_does_not_start_on_a_changed_waitress(monkeypatch):
    monkeypatch.setattr(waitress_check, "_checked", False)
    monkeypatch.delattr(HTTPChannel, "_flush_exception")
    emu = Emulator({"devices": [{"type": "switch"}]})
    with pytest.raises(WaitressChanged, match=r"HTTPChannel\._flush_exception"):
        emu.start()
    with pytest.raises(RuntimeError, match="not running"):
        emu.port
    monkeypatch.undo()
    with Emulator({"devices": [{"type": "switch"}]}) as again:  # the real waitress: it starts
        assert again.port


def test_the_command_line_says_what_is_missing_and_exits_1():
    code = (
        "import sys, waitress.channel as c; del c.HTTPChannel._flush_some; "
        "from emulator.cli import main; sys.exit(main(['--port', '0', '--no-discovery']))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 1
    assert "alpaca-emulator: waitress" in result.stderr and "HTTPChannel._flush_some" in result.stderr
    assert "Traceback" not in result.stderr
