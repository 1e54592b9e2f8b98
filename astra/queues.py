"""Draining the message queue of AlpacaDevices in a thread, so producers never block on it.

A device process puts ``(metadata, payload)`` messages (logs, polled values) on a multiprocessing
queue. Nobody taking them is a hang waiting to happen: the pipe under the queue fills, the
child's feeder thread blocks, and the child cannot exit. :class:`QueueDrain` is the one taker
every consumer in the project uses (the recorder, the scenario rig, the test helpers, the
benchmarks)::

    device processes ──put──> queue ──QueueDrain thread──> handler(item)   (or .items)
                                          ^
                     drain_now() / stop() take what is queued, in the same order

One taker at a time holds a lock while it takes and hands over an item, so items reach the
handler in queue order whether the thread or a caller of :meth:`QueueDrain.drain_now` took them.
The thread blocks in ``get(timeout=poll_s)`` (no busy waiting); ``poll_s`` only bounds how long
:meth:`QueueDrain.stop` and :meth:`QueueDrain.drain_now` wait for the thread to let go.

Works with ``multiprocessing`` queues (any context), ``Manager().Queue()`` proxies and
``queue.Queue``. A queue that goes away (closed, or its manager shut down) ends the thread quietly.
"""

from __future__ import annotations

import logging
import queue as queue_module
import threading
from typing import Any, Callable

log = logging.getLogger(__name__)

#: What ``get`` raises once a queue is unusable: closed (ValueError, OSError) or its manager gone.
_GONE = (EOFError, OSError, ValueError)


class QueueDrain:
    """A thread that takes every item from ``q`` and passes it to ``handler`` (or keeps it in ``.items``).

    ``flush``, if given, is called after each batch: when the queue is found empty after items
    were handled, so also at the end if anything was handled since; the place to commit.
    A handler that raises is logged and counted in ``handler_errors``; the drain goes on, since
    a drain that stops would block the producers.
    """

    def __init__(
        self,
        q: Any,
        handler: Callable[[Any], Any] | None = None,
        *,
        poll_s: float = 0.05,
        flush: Callable[[], Any] | None = None,
        name: str = "queue-drain",
    ) -> None:
        if poll_s <= 0:
            raise ValueError(f"poll_s must be > 0, got {poll_s!r}")
        self.queue = q
        self.handler = handler
        self.flush = flush
        self.poll_s = poll_s
        self.items: list[Any] = []
        self.count = 0
        self.handler_errors = 0
        self._take = threading.Lock()  # held by whoever takes and hands over an item
        self._turn = threading.Condition()  # drain_now() callers waiting for the thread to let go
        self._waiting = 0
        self._unflushed = 0
        self._gone = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> "QueueDrain":
        if self._thread.ident is None:
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> bool:
        """Take what remains on the queue, then end the thread; False if it did not end within ``timeout``."""
        self._stop.set()
        with self._turn:
            self._turn.notify_all()
        if self._thread.ident is None:  # never started: take the rest here
            self.drain_now()
            return True
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("%s did not stop within %.1f s (a handler still busy?)", self._thread.name, timeout)
            return False
        return True

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> "QueueDrain":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- taking --------------------------------------------------------------------------------

    def drain_now(self) -> int:
        """Take everything queued now, in this thread; returns how many items were taken.

        "Queued" means readable: an item another process has put but its feeder thread has not
        yet written is not on the queue yet.
        """
        with self._turn:
            self._waiting += 1
        try:
            with self._take:
                n = 0
                while self._take_one(None):
                    n += 1
                self._flush()
                return n
        finally:
            with self._turn:
                self._waiting -= 1
                self._turn.notify_all()

    def _run(self) -> None:
        try:
            while not self._stop.is_set() and not self._gone:
                with self._turn:  # let a drain_now() caller go first
                    while self._waiting and not self._stop.is_set():
                        self._turn.wait(self.poll_s)
                with self._take:
                    if not self._take_one(self.poll_s):
                        self._flush()
        finally:
            self.drain_now()

    def _take_one(self, timeout: float | None) -> bool:
        """Take one item (waiting up to ``timeout``; None: only if one is there) and hand it over."""
        if self._gone:
            return False
        try:
            item = self.queue.get(timeout=timeout) if timeout else self.queue.get_nowait()
        except queue_module.Empty:
            return False
        except _GONE as exc:
            log.debug("%s: queue gone (%s)", self._thread.name, exc)
            self._gone = True
            return False
        self.count += 1
        self._unflushed += 1
        if self.handler is None:
            self.items.append(item)
            return True
        try:
            self.handler(item)
        except Exception:
            self.handler_errors += 1
            log.exception("%s: handler failed for %r", self._thread.name, item)
        return True

    def _flush(self) -> None:
        if self.flush is None or not self._unflushed:
            return
        self._unflushed = 0
        try:
            self.flush()
        except Exception:
            log.exception("%s: flush failed", self._thread.name)
