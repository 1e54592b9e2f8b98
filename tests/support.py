"""Helpers shared by the test modules: polling with a deadline, one-device emulators, and a
command run on a pseudo-terminal.

Imported as ``from support import ...``: tests/ has no __init__.py, so pytest puts tests/ on
sys.path (as the astra tests already rely on for test_astra_support). Holds no tests itself.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from typing import Any, Callable

from emulator import Emulator


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it is truthy or ``timeout`` passes; return its last value.

    For ``assert wait_until(...)`` and for callers that decide themselves what a timeout means.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def wait_for(predicate: Callable[[], Any], what: str = "condition", timeout: float = 15.0,
             interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it is truthy and return that value; fail the test naming ``what``
    when ``timeout`` passes, so a hang reads as what was awaited rather than a bare False."""
    value = wait_until(predicate, timeout, interval)
    if not value:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")
    return value


def one_device(device_type: str, time_scale: float = 100, **options: Any) -> Emulator:
    """An emulator (not yet started) serving one already connected device of ``device_type``."""
    return Emulator({"devices": [{"type": device_type, "connected": True, **options}]}, time_scale=time_scale)


def run_on_a_terminal(args: list[str], timeout: float = 60.0, **popen: Any) -> tuple[int, str]:
    """Run ``args`` with a pseudo-terminal as stdout and stderr (what ``isatty()`` says yes to);
    its exit status and everything it wrote, escape codes included."""
    import pty

    main, child = pty.openpty()
    proc = subprocess.Popen(args, stdout=child, stderr=child, **popen)
    os.close(child)
    chunks = []
    try:
        while True:
            try:
                data = os.read(main, 65536)
            except OSError:  # the child closed its end
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(main)
        code = proc.wait(timeout=timeout)
    return code, b"".join(chunks).decode(errors="replace")


def refused(port: int) -> bool:
    """Whether a TCP connection to 127.0.0.1:``port`` is refused now (an outage's window)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True
