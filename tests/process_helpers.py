"""Killing ingest worker processes at moments they are known to have reached, never after a sleep.

Two such moments, both real (nothing in the engine is replaced):

- *while starting*: a test wraps the engine's worker initializer with :func:`start_when_allowed`,
  so no process can finish starting before the test sets an event; any worker killed before that
  is killed during its start-up.
- *while holding a chunk*: an input photo is a named pipe (:func:`held_photo`); a worker reading
  it blocks inside its chunk until the test writes, and the test sees the reader arrive (opening
  the pipe for writing succeeds only once a reader is there).
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
WAIT_S = 300.0  # a bound on waiting for a state a slow machine must still reach (never a guess at an order)


def start_when_allowed(initializer: tuple[Callable[..., None], tuple[Any, ...]], allowed: Any) -> None:
    """A worker's start-up held until ``allowed`` (a multiprocessing Event) is set, then the real one."""
    allowed.wait()
    function, args = initializer
    function(*args)


def wait_for(condition: Callable[[], T | None], what: str, timeout: float = WAIT_S) -> T:
    """Poll ``condition`` until it returns something truthy (a state that must come, not an order)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def children() -> list[Any]:
    """This process's live worker processes (the engines' pools, spawned through multiprocessing)."""
    return multiprocessing.active_children()


def holders(path: Path, exclude: set[int] = frozenset()) -> list[Any]:  # type: ignore[assignment]
    """The child processes holding ``path`` open (read from /proc)."""
    found = []
    for child in children():
        if child.pid in exclude:
            continue
        try:
            links = [os.readlink(f"/proc/{child.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{child.pid}/fd")]
        except OSError:  # it exited meanwhile
            continue
        if str(path) in links:
            found.append(child)
    return found


class HeldPhoto:
    """A photo served through a named pipe: the first worker to read it is killed mid-chunk, the
    next one (the engine's retry) gets the photo's bytes."""

    def __init__(self, path: Path, data: bytes) -> None:
        os.mkfifo(path)
        self.path, self.data = path, data
        self.killed: list[int] = []

    def kill_first_reader_then_serve(self) -> None:
        writer = wait_for(self._open_for_writing, "a worker process to read the held photo")[0]
        try:
            # A worker is inside its chunk, reading this photo: kill that one.
            reader = wait_for(lambda: holders(self.path), "the reader's descriptor")[0]
            reader.kill()
            self.killed.append(reader.pid)
            # Our end stays open, so nobody sees an end of file: the retry's reader opens at once
            # and waits for the bytes, which go out once it holds the pipe.
            wait_for(lambda: holders(self.path, exclude=set(self.killed)), "the engine to retry the held photo")
            os.set_blocking(writer, True)
            view = memoryview(self.data)
            while view:
                view = view[os.write(writer, view) :]
        finally:
            os.close(writer)

    def _open_for_writing(self) -> list[int]:
        try:
            return [os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)]  # succeeds only once a reader is there
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            return []
