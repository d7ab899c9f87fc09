"""Worker processes die with the process that started them.

Why (issue 12 §5): a server killed with ``kill -9`` during an upload job, or a CLI ingest killed the
same way, left its worker processes running at 350-600 MB each, holding the catalog open, with no
one to hand their results to. A process killed by SIGKILL runs no clean-up, so the workers must
notice on their own.

How: every process started by ``multiprocessing`` with the spawn method holds the read end of a
pipe whose write end only its parent holds (``multiprocessing.parent_process().sentinel``); when
the parent dies, however it dies, the kernel closes that end and the sentinel becomes readable. A
daemon thread in the worker waits on it (no polling) and ends the worker at once. (Linux's
``PR_SET_PDEATHSIG`` is not used: it fires when the *thread* that started the worker exits, and
pools start workers from short-lived threads.) Where there is no sentinel, the thread polls the
parent's pid instead.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import threading
import time

log = logging.getLogger(__name__)

ORPHANED_EXIT = 70  # the exit status of a worker whose parent died (EX_SOFTWARE)
POLL_S = 0.5


def die_with_parent() -> None:
    """In a worker process: end this process as soon as the process that started it is gone."""
    parent = multiprocessing.parent_process()
    sentinel = getattr(parent, "sentinel", None) if parent is not None else None
    ppid = os.getppid()
    thread = threading.Thread(target=_watch, args=(sentinel, ppid), name="facesearch-lifeline", daemon=True)
    thread.start()


def _watch(sentinel: int | None, ppid: int) -> None:
    if sentinel is not None:
        try:
            multiprocessing.connection.wait([sentinel])
        except OSError:  # the sentinel cannot be waited on: fall back to watching the pid
            sentinel = None
    if sentinel is None:
        while os.getppid() == ppid:
            time.sleep(POLL_S)  # polling the parent's pid: the only signal left where there is no sentinel
    os._exit(ORPHANED_EXIT)  # no clean-up to run: the parent that would take the results is gone
