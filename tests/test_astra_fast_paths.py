"""The fast paths of astra's pipe (raw ImageArray bytes, calls run by the thread that reads them) give the same answers as alpyca."""

from __future__ import annotations

import threading
import time

from alpaca.camera import Camera

from emulator import Emulator
from support import wait_until
from test_astra_support import (  # noqa: F401 - the module-level leak check is a fixture
    no_device_process_left,
    running_device,
)


def test_image_array_through_the_pipe_equals_alpyca_s_rows():
    cfg = {"devices": [{"type": "camera", "width": 64, "height": 48, "readout_time_s": 0.0}]}
    with Emulator(cfg) as emu, running_device(emu.address, "Camera") as (dev, col):
        dev.get("StartExposure", Duration=0.05, Light=True)
        assert wait_until(lambda: dev.get("ImageReady"), 5)
        image = dev.get("ImageArray")
        direct = Camera(emu.address, 0).ImageArray
        assert type(image) is list and type(image[0]) is type(direct[0])
        assert image == direct
        assert dev.get("Name") == "Rehearsal Camera 0"  # the stream is in step after the raw bytes


def test_control_messages_are_served_while_every_call_is_busy():
    """With workers=1 the only call thread is busy: the listener still answers control messages and queues calls."""
    with Emulator() as emu, running_device(emu.address, "SafetyMonitor", workers=1) as (dev, col):
        assert dev.get("IsSafe") in (True, False)
        emu.faults.add({"match": {"device_type": "safetymonitor", "member": "description"},
                        "action": {"kind": "latency", "ms": 3000}, "trigger": {"count": 1}})
        results: dict[str, object] = {}
        slow = threading.Thread(target=lambda: results.setdefault("slow", dev.get("Description")), daemon=True)
        slow.start()
        time.sleep(0.3)  # let the slow call reach the server (no timing is asserted on this)
        assert dev.poll_list() == []  # a control message, answered while the slow call runs
        assert slow.is_alive()
        assert dev.get("IsSafe") in (True, False)  # queued behind the busy thread, then answered
        slow.join(10)
        assert isinstance(results.get("slow"), str)

