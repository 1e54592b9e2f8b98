"""Starting server processes for benchmarks and reading their CPU time and memory from /proc."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from astra.queues import QueueDrain

_TICK = os.sysconf("SC_CLK_TCK")
#: The repository root: child interpreters run ``-m bench.<x>`` from here, wherever we were started.
ROOT = str(Path(__file__).resolve().parent.parent)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def thread_cpu_seconds(pid: int) -> float:
    """CPU time of a process's live threads in ns precision (sum of /proc/<pid>/task/*/schedstat).

    Ticks (``cpu_seconds``) are 10 ms here, too coarse for a few hundred requests; threads that
    already ended are not counted, which suits long-lived servers. Falls back to ticks.
    """
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return cpu_seconds(pid)
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1e9 if total else cpu_seconds(pid)


def status_kb(pid: int, key: str) -> int:
    """A ``kB`` line of /proc/<pid>/status (``VmRSS``, ``VmHWM``, ...); -1 when absent."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def rss_mb(pid: int) -> float:
    """Resident set size now (VmRSS), MiB; shared pages (libraries, fork's copy-on-write) count in full."""
    kb = status_kb(pid, "VmRSS")
    return kb / 1024 if kb >= 0 else float("nan")


def hwm_mb(pid: int) -> float:
    """Peak resident set size so far (VmHWM), MiB."""
    kb = status_kb(pid, "VmHWM")
    return kb / 1024 if kb >= 0 else float("nan")


def pss_mb(pid: int) -> float:
    """Proportional set size (shared pages divided among their users), MiB; nan where unreadable."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class ServerProcess:
    """A server subprocess that prints 'listening on http://HOST:PORT'; stopped on exit."""

    def __init__(self, *args: str, timeout: float = 30.0) -> None:
        # Its stderr (waitress's "Task queue depth" warnings under load, ...) goes to a file,
        # shown only if it fails to start, so it does not drown the figures.
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=self._stderr, text=True, cwd=ROOT)
        deadline = time.monotonic() + timeout
        self.url = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            m = re.search(r"listening on (http://\S+)", line)
            if m:
                self.url = m.group(1)
                break
            if not line and self.proc.poll() is not None:
                break
        if not self.url:
            self.stop(close_log=False)
            raise RuntimeError(f"server {args} did not start:\n{self.stderr_text()[-3000:]}")
        # Keep reading what it prints later, so a chatty server never blocks on a full pipe.
        threading.Thread(target=self._drain, name="bench-server-stdout", daemon=True).start()

    def _drain(self) -> None:
        try:
            for _ in self.proc.stdout:
                pass
        except (OSError, ValueError):
            pass

    def stderr_text(self) -> str:
        try:
            self._stderr.seek(0)
            return self._stderr.read()
        except (OSError, ValueError):
            return ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def address(self) -> str:
        """``host:port``, as alpyca takes it."""
        return self.url.split("://", 1)[1].rstrip("/")

    def stop(self, close_log: bool = True) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if close_log:
            try:
                self._stderr.close()
            except OSError:
                pass

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmulatorProcess(ServerProcess):
    """``alpaca-emulator`` in its own process, from TOML text (None: the default devices); discovery off."""

    def __init__(self, config_toml: str | None = None, *extra: str, timeout: float = 30.0) -> None:
        self._tmp: str | None = None
        args = ["-m", "emulator.cli", "--port", "0", "--no-discovery", *extra]
        if config_toml is not None:
            self._tmp = tempfile.mkdtemp(prefix="bench-emu-")
            path = Path(self._tmp) / "emulator.toml"
            path.write_text(config_toml)
            args += ["--config", str(path)]
        try:
            super().__init__(*args, timeout=timeout)
        except BaseException:
            self._cleanup()
            raise

    def _cleanup(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def stop(self, close_log: bool = True) -> None:
        try:
            super().stop(close_log)
        finally:
            self._cleanup()


def _discard(item: object) -> None:
    """Handler of a QueueDrainer that only counts."""


class QueueDrainer(QueueDrain):
    """A started :class:`astra.queues.QueueDrain` that counts what comes (keeps it with ``keep``), so producers never block."""

    def __init__(self, queue: object, keep: bool = False) -> None:
        super().__init__(queue, None if keep else _discard, poll_s=0.2, name="bench-queue-drain")
        self.start()

    def close(self) -> None:
        self.stop(2.0)
        try:
            self.queue.close()  # type: ignore[attr-defined]
        except Exception:
            pass
