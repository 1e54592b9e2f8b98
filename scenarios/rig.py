"""The parts a rehearsal runs against: a served emulator and AlpacaDevice processes on one drained queue.

The scenario runner and the pytest fixtures (``alpaca_emulator``, ``alpaca_device``) set things
up through this module alone, so a scenario and a user's own test start, watch and stop devices
the same way::

    serve_emulator(config) ──> Emulator on 127.0.0.1, a free port
    DeviceRig.start(address, type, number) ──> AlpacaDevice (one OS process each)
          └── all put on one spawn-context queue ──> QueueDrain ──> handler (or .drain.items)
    DeviceRig.stop(name) / leftovers() / close(): stopped, gone (reaped), queue drained and closed

Process state comes from psutil, so the same checks hold on Linux and macOS; each process is
remembered with its start time, so a recycled pid never passes for a live device.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from typing import Any, Callable

import psutil

from astra.alpaca_device_process import AlpacaDevice, AlpacaDeviceIPCError
from astra.queues import QueueDrain
from emulator import Emulator
from scenarios.names import DEVICE_TYPES, type_name

log = logging.getLogger(__name__)

#: States a process can be seen in besides running: a zombie has exited but nobody reaped it.
ZOMBIE = psutil.STATUS_ZOMBIE
STOPPED = psutil.STATUS_STOPPED


def serve_emulator(config: Any = None, **kwargs: Any) -> Emulator:
    """A started emulator (config: an EmulatorConfig, a dict, a TOML path or None) on a free loopback port."""
    return Emulator(config, **kwargs).start()


class DeviceNotReady(RuntimeError):
    """A device process did not answer over its pipe in time."""


def process_state(proc: psutil.Process) -> str | None:
    """None when the process is gone (or its pid now belongs to another process); else its psutil status."""
    try:
        if not proc.is_running():
            return None
        return proc.status()
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:
        return "?"


class DeviceRig:
    """AlpacaDevices started against emulators, sharing one queue that is always drained.

    ``handler`` receives each ``(metadata, payload)`` message on the drain thread; without one
    they are kept in ``self.drain.items``.
    """

    def __init__(self, handler: Callable[[Any], Any] | None = None, *, name: str = "alpaca-devices") -> None:
        # a spawn-context queue can go to children of every start method (a fork-context one cannot)
        self.queue = multiprocessing.get_context("spawn").Queue()
        self.drain = QueueDrain(self.queue, handler, name=f"{name}-queue").start()
        self.devices: dict[str, AlpacaDevice] = {}
        self.processes: dict[str, psutil.Process] = {}
        self.stopped: set[str] = set()

    def start(
        self,
        address: str,
        device_type: str,
        number: int = 0,
        name: str | None = None,
        *,
        connectable: bool = True,
        debug: bool = False,
        **kwargs: Any,
    ) -> AlpacaDevice:
        """Start an AlpacaDevice (``device_type`` in any case); keyword arguments go to AlpacaDevice."""
        type_ = type_name(device_type.lower()) if device_type.lower() in DEVICE_TYPES else device_type
        name = name or f"{type_}{number}"
        if name in self.devices:
            raise ValueError(f"a device named {name!r} was started already")
        # not fork: a forked child would inherit the in-process emulator's listening socket,
        # so a 'refuse' or 'down' outage could not close the port
        kwargs.setdefault("start_method", "forkserver")
        dev = AlpacaDevice(address, type_, number, name, self.queue, connectable, debug, **kwargs)
        dev.start()
        self.devices[name] = dev
        self.processes[name] = psutil.Process(dev.pid)
        return dev

    def wait_ready(self, name: str, timeout: float = 30.0) -> None:
        """Until the device process answers over its pipe.

        Starting a process (a forkserver's first start, imports, the connect) can take longer than
        the short call deadlines scenarios use on purpose; each try is bounded by the call deadline.
        """
        dev = self.devices[name]
        limit = time.monotonic() + timeout
        while True:
            try:
                dev.poll_list()
                return
            except AlpacaDeviceIPCError as exc:
                if exc.reason != "timeout" or time.monotonic() > limit:
                    raise DeviceNotReady(f"device {name} did not come up: {exc}") from None

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def state(self, name: str) -> str | None:
        return process_state(self.processes[name])

    def signal(self, name: str, what: str) -> None:
        """``kill`` (SIGKILL), ``suspend`` (SIGSTOP) or ``resume`` (SIGCONT) the device's process."""
        getattr(self.processes[name], what)()

    def stop(self, name: str, timeout: float = 2.0) -> None:
        """``device.stop(timeout)``; the device counts as stopped even when that raises."""
        self.stopped.add(name)
        self.devices[name].stop(timeout=timeout)

    def running(self) -> list[str]:
        return [name for name in self.devices if name not in self.stopped]

    def leftovers(self, timeout: float = 3.0) -> dict[str, tuple[int, str]]:
        """Processes still there ``timeout`` s after their stop, as name -> (pid, state); they are SIGKILLed."""
        limit = time.monotonic() + timeout
        left: dict[str, tuple[int, str]] = {}
        for name, proc in self.processes.items():
            state = process_state(proc)
            while state is not None and time.monotonic() < limit:
                # no exit to wait for: a forkserver's child is not ours, and waiting on our own
                # (psutil.wait_procs) would reap it behind multiprocessing's back
                time.sleep(0.02)
                state = process_state(proc)
            if state is not None:
                left[name] = (proc.pid, state)
                try:
                    proc.kill()
                except psutil.Error:
                    pass
        return left

    def close(self, stop_timeout: float = 2.0) -> list[str]:
        """Stop every device not stopped yet, drain and close the queue; returns what went wrong."""
        problems = []
        for name in reversed(self.running()):
            try:
                self.stop(name, stop_timeout)
            except Exception as exc:  # keep stopping the others
                problems.append(f"stopping {name} failed: {exc}")
        problems += [f"process {pid} of {name} still there after stop(), state {state}" for name, (pid, state) in self.leftovers().items()]
        self.drain.stop()
        self.queue.close()
        self.queue.join_thread()
        return problems
