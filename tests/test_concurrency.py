"""The server's concurrency parts on their own: the pipeline pool and the readers-writer lock.

The pool is generic over what it lends, so these tests lend plain objects and count builds; the real
pipelines are borrowed concurrently in tests/test_api.py (several clients over HTTP).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from facesearch.api.rwlock import ReadWriteLock
from facesearch.models.pipeline_pool import PipelinePool


class Built:
    def __init__(self, threads: int) -> None:
        self.threads = threads


def test_the_pool_builds_only_under_concurrent_demand_and_never_more_than_its_size() -> None:
    pool = PipelinePool(Built, size=2, cores=8)  # type: ignore[arg-type]
    with pool.borrow() as first:
        pass
    with pool.borrow() as again:
        assert again is first and pool.built == 1  # one caller at a time: one pipeline
    assert first.threads == 4  # the cores shared out among the pool's pipelines

    inside = threading.Barrier(2)
    lent: list[object] = []

    def hold() -> None:
        with pool.borrow() as pipeline:
            lent.append(pipeline)
            inside.wait(timeout=5)  # both are lent at the same moment

    threads = [threading.Thread(target=hold) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert pool.built == 2 and lent[0] is not lent[1]

    # A third concurrent caller waits for one to come back rather than building a third.
    order: list[str] = []

    def third() -> None:
        with pool.borrow():
            order.append("got")

    with pool.borrow(), pool.borrow():
        waiter = threading.Thread(target=third)
        waiter.start()
        waiter.join(timeout=0.2)
        assert waiter.is_alive() and order == [], "the third caller must wait while both are lent"
        order.append("returned")
    waiter.join(timeout=5)
    assert order == ["returned", "got"] and pool.built == 2


def test_a_failed_build_frees_its_slot() -> None:
    calls = {"n": 0}

    def build(threads: int) -> Built:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("model file unreadable")
        return Built(threads)

    pool = PipelinePool(build, size=1)  # type: ignore[arg-type]
    with pytest.raises(OSError), pool.borrow():
        pass
    with pool.borrow() as pipeline:
        assert isinstance(pipeline, Built) and pool.built == 1
    assert pool.primary() is pipeline
    with pytest.raises(ValueError):
        pool.size = 0


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` until it holds (the lock's own state, not a guess at how long a thread takes)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_readers_share_writers_exclude_and_a_waiting_writer_goes_before_new_readers() -> None:
    lock = ReadWriteLock()
    events: list[str] = []
    two_readers = threading.Barrier(3)  # r1, r2 and the test: both readers are inside at once
    release_readers = threading.Event()
    r3_arriving = threading.Event()

    def reader(name: str) -> None:
        if name == "r3":
            r3_arriving.set()
        with lock.read():
            events.append(f"{name} in")
            if name in ("r1", "r2"):
                two_readers.wait(timeout=5)  # deadlocks (times out) unless both read at once
                release_readers.wait(timeout=5)
            events.append(f"{name} out")

    def writer() -> None:
        with lock.write():
            events.append("w in")
            events.append("w out")

    r1 = threading.Thread(target=reader, args=("r1",))
    r2 = threading.Thread(target=reader, args=("r2",))
    r1.start()
    r2.start()
    two_readers.wait(timeout=5)
    w = threading.Thread(target=writer)
    w.start()
    wait_until(lambda: lock._writers_waiting == 1)  # the writer waits for the two readers
    r3 = threading.Thread(target=reader, args=("r3",))  # arrives while the writer waits
    r3.start()
    r3_arriving.wait(timeout=5)
    r3.join(timeout=0.1)
    assert "r3 in" not in events, "a new reader must queue behind a waiting writer"
    release_readers.set()
    for t in (r1, r2, w, r3):
        t.join(timeout=5)
    assert events.index("w in") > max(events.index("r1 out"), events.index("r2 out"))
    assert events.index("r3 in") > events.index("w out")  # writer preference
    assert events.index("w out") == events.index("w in") + 1  # nobody inside while it writes
