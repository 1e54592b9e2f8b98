"""QueueDrain: every item, in order, from real multiprocessing queues (also a Manager proxy), with
no busy waiting, a synchronous drain_now(), a stop() that takes what remains, and no thread left."""

from __future__ import annotations

import multiprocessing
import queue as queue_module
import threading

import pytest

from astra.queues import QueueDrain
from support import wait_until


def _produce(q, n: int, start: int = 0) -> None:
    """Child process: put n (metadata, payload) messages, as an AlpacaDevice does."""
    for i in range(start, start + n):
        q.put(({"device_name": "child", "i": i}, {"type": "log", "data": ("info", f"message {i}")}))


def _run_producer(ctx, q, n: int, start: int = 0) -> None:
    p = ctx.Process(target=_produce, args=(q, n, start))
    p.start()
    p.join(30)
    assert p.exitcode == 0, "producer did not finish (blocked on a full queue?)"


def _indices(items: list) -> list[int]:
    return [md["i"] for md, _ in items]


@pytest.fixture(params=["spawn", "fork"])
def ctx_queue(request):
    ctx = multiprocessing.get_context(request.param)
    q = ctx.Queue()
    yield ctx, q
    q.close()
    q.join_thread()


def test_keeps_every_item_in_order_when_there_is_no_handler(ctx_queue) -> None:
    ctx, q = ctx_queue
    with QueueDrain(q) as drain:
        # more than a pipe holds: the producer can only finish because the drain takes as it goes
        _run_producer(ctx, q, 3000)
        assert wait_until(lambda: drain.count == 3000, 15)
    assert _indices(drain.items) == list(range(3000))
    assert not drain.running


def test_handler_gets_each_item_on_the_drain_thread() -> None:
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    seen: list[tuple[int, str]] = []
    drain = QueueDrain(q, lambda item: seen.append((item[0]["i"], threading.current_thread().name)), name="my-drain")
    drain.start()
    try:
        _run_producer(ctx, q, 50)
        assert wait_until(lambda: len(seen) == 50, 10)
    finally:
        assert drain.stop()
        q.close()
        q.join_thread()
    assert [i for i, _ in seen] == list(range(50))
    assert {name for _, name in seen} == {"my-drain"}
    assert drain.items == []  # a handler takes them; nothing is kept twice


def test_drain_now_takes_what_is_queued_synchronously_without_a_thread(ctx_queue) -> None:
    ctx, q = ctx_queue
    drain = QueueDrain(q)
    _run_producer(ctx, q, 20)  # the child has exited: all 20 are in the pipe
    assert drain.drain_now() == 20
    assert _indices(drain.items) == list(range(20))
    assert drain.drain_now() == 0
    assert drain.stop()


def test_drain_now_while_the_thread_runs_keeps_queue_order() -> None:
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    got: list[int] = []
    drain = QueueDrain(q, lambda item: got.append(item[0]["i"]), poll_s=0.05).start()
    try:
        producer = ctx.Process(target=_produce, args=(q, 2000))
        producer.start()
        taken_here = 0
        while producer.is_alive():
            taken_here += drain.drain_now()
        producer.join(30)
        taken_here += drain.drain_now()
    finally:
        assert drain.stop()
        q.close()
        q.join_thread()
    assert got == list(range(2000))  # nothing lost, nothing twice, in order, whoever took it
    assert drain.count == 2000 and 0 <= taken_here <= 2000


def test_stop_takes_what_remains_and_joins(ctx_queue) -> None:
    ctx, q = ctx_queue
    drain = QueueDrain(q, poll_s=0.05).start()
    _run_producer(ctx, q, 500)
    assert drain.stop(timeout=5.0) is True  # at once: whatever the thread had not taken yet, stop() takes
    assert not drain.running
    assert _indices(drain.items) == list(range(500))


def test_stop_on_a_drain_never_started_takes_the_rest(ctx_queue) -> None:
    ctx, q = ctx_queue
    drain = QueueDrain(q)
    _run_producer(ctx, q, 5)
    assert drain.stop() is True
    assert drain.count == 5


def test_manager_queue_proxy_and_its_manager_going_away() -> None:
    ctx = multiprocessing.get_context("spawn")
    manager = ctx.Manager()
    try:
        q = manager.Queue()
        drain = QueueDrain(q, poll_s=0.05).start()
        _run_producer(ctx, q, 30)
        assert wait_until(lambda: drain.count == 30, 10)
        assert _indices(drain.items) == list(range(30))
    finally:
        manager.shutdown()
    # the proxy's server is gone: the drain ends by itself, quietly, and stop() still returns
    assert wait_until(lambda: not drain.running, 10)
    assert drain.stop() is True


def test_a_queue_closed_under_the_drain_ends_it() -> None:
    q = multiprocessing.get_context("fork").Queue()
    drain = QueueDrain(q, poll_s=0.05).start()
    q.close()
    q.join_thread()
    assert wait_until(lambda: not drain.running, 10)
    assert drain.stop() is True


def test_a_failing_handler_is_counted_and_the_drain_goes_on() -> None:
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    good: list[int] = []

    def handler(item) -> None:
        if item[0]["i"] % 2:
            raise RuntimeError("odd one")
        good.append(item[0]["i"])

    drain = QueueDrain(q, handler).start()
    try:
        _run_producer(ctx, q, 10)
        assert wait_until(lambda: drain.count == 10, 10)
    finally:
        drain.stop()
        q.close()
        q.join_thread()
    assert good == [0, 2, 4, 6, 8] and drain.handler_errors == 5


def test_flush_follows_each_batch_and_the_end() -> None:
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    handled: list[int] = []
    flushed_at: list[int] = []
    drain = QueueDrain(q, lambda item: handled.append(item[0]["i"]), flush=lambda: flushed_at.append(len(handled))).start()
    try:
        _run_producer(ctx, q, 10)
        assert wait_until(lambda: flushed_at and flushed_at[-1] == 10, 10)
        idle_flushes = len(flushed_at)
        _run_producer(ctx, q, 5, start=10)
        assert wait_until(lambda: flushed_at[-1] == 15, 10)
    finally:
        drain.stop()
        q.close()
        q.join_thread()
    assert flushed_at == sorted(flushed_at) and len(set(flushed_at)) == len(flushed_at)  # only after new items
    assert idle_flushes >= 1


class CountingQueue:
    """A real multiprocessing queue that counts the get calls made on it."""

    def __init__(self, q) -> None:
        self.q = q
        self.gets = 0

    def get(self, timeout=None):
        self.gets += 1
        return self.q.get(timeout=timeout)

    def get_nowait(self):
        self.gets += 1
        return self.q.get_nowait()


def test_an_idle_drain_blocks_instead_of_spinning() -> None:
    q = multiprocessing.get_context("fork").Queue()
    counting = CountingQueue(q)
    stop = threading.Event()
    drain = QueueDrain(counting, poll_s=0.05).start()
    stop.wait(1.0)  # one second with nothing to take
    drain.stop()
    q.close()
    q.join_thread()
    # blocked in get(timeout=0.05): about 20 calls; a spinning loop makes thousands
    assert 1 <= counting.gets < 200, counting.gets


def test_plain_queue_and_bad_poll_interval() -> None:
    q: queue_module.Queue = queue_module.Queue()
    for i in range(3):
        q.put(({"i": i}, {}))
    with QueueDrain(q) as drain:
        assert wait_until(lambda: drain.count == 3, 5)
    assert _indices(drain.items) == [0, 1, 2]
    with pytest.raises(ValueError, match="poll_s"):
        QueueDrain(q, poll_s=0)
