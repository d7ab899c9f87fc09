"""A bounded pool of face pipelines, so that several searches can embed their probes at once.

One :class:`~facesearch.models.pipeline.FacePipeline` serves one caller at a time: detectors keep
scratch state between calls, and ONNX sessions are fastest when each owns its threads. A server
answering many investigators needs several; each costs its models' memory (~150 MB for the default
recipe), so the pool builds them only as concurrent demand appears, up to ``size``, and a caller
beyond that waits for one to come back instead of building more.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from facesearch.models.pipeline import FacePipeline


class PipelinePool:
    """Lend pipelines built by ``build(threads)``; ``size`` of them at most exist.

    ``threads`` per pipeline divides the machine's cores among them (at least one each), so a full
    pool does not oversubscribe the CPU.
    """

    def __init__(self, build: Callable[[int], FacePipeline], size: int = 1, cores: int | None = None) -> None:
        self.size = size
        self.cores = cores or os.cpu_count() or 1
        self._build = build
        self._idle: list[FacePipeline] = []
        self._built = 0
        self._ready = threading.Condition()

    @property
    def size(self) -> int:
        """The most pipelines that may exist; set it before the first borrow (a server sets its concurrency)."""
        return self._size

    @size.setter
    def size(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a pipeline pool needs at least one pipeline, not {size}")
        self._size = size

    @property
    def threads(self) -> int:
        """Threads per pipeline's runtimes: the cores shared out (0: the runtime's own default, for one)."""
        return 0 if self._size == 1 else max(1, self.cores // self._size)

    @property
    def built(self) -> int:
        """How many pipelines exist (idle or lent)."""
        return self._built

    def primary(self) -> FacePipeline:
        """A pipeline for single-threaded use (ingest, the CLI): the first one, built on demand.

        It is not taken out of the pool: callers that use it must not also borrow concurrently, which
        is the case for everything except a server, and a server only borrows.
        """
        with self._ready:
            if self._idle:
                return self._idle[0]
            if self._built == 0:
                self._built = 1
                try:
                    pipeline = self._build(self.threads)
                except BaseException:
                    self._built = 0
                    raise
                self._idle.append(pipeline)
                return pipeline
        raise RuntimeError("every pipeline is lent out; borrow() one instead")

    @contextmanager
    def borrow(self) -> Iterator[FacePipeline]:
        """A pipeline for the caller alone until the block ends (builds one if none is idle and room remains)."""
        pipeline = self._take()
        try:
            yield pipeline
        finally:
            with self._ready:
                self._idle.append(pipeline)
                self._ready.notify()

    def _take(self) -> FacePipeline:
        with self._ready:
            while not self._idle and self._built >= self.size:
                self._ready.wait()
            if self._idle:
                return self._idle.pop()
            self._built += 1  # reserve the slot, then build outside the lock (a second or two)
        try:
            return self._build(self.threads)
        except BaseException:
            with self._ready:
                self._built -= 1
                self._ready.notify()
            raise
