"""A watch's optional webhook (issue 13): the URL checked once, each alert POSTed from a thread.

What is sent: a small JSON object (alert id, case id, watch id, the label, fmr and time of the alert)
and nothing else: no face image, no embedding, no source path, no watch label (it may be a name). The
receiver learns that a case has a new alert and fetches it with its own key.

How: a few background threads (a queue), each delivery queued after the alert is committed, with a short timeout, no
redirects followed (a redirect is a failure: the body goes only where the watch said) and no proxy
from the environment; the ingest that raised the alert never waits for it and the write lock is not
held. The outcome (``delivered (HTTP 204)`` or ``failed: why``) is written on the alert row by the
thread itself, so a dead webhook leaves a visible trace and never an ingest error.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any
from urllib.parse import urlsplit

from facesearch.errors import FaceSearchError
from facesearch.media.urls import WEB_SCHEMES

log = logging.getLogger(__name__)

TIMEOUT_S = 5.0
PARALLEL = 4
MAX_URL = 2000
MAX_STATUS = 300


def check_webhook(url: str | None) -> str | None:
    """A webhook URL as kept: http(s), with a host, no credentials (refused, not stripped: the caller
    meant them, and a password kept in the catalog would be shown to every user of the case); None stays None."""
    if url is None or not url.strip():
        return None
    text = url.strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (a bad port raises here)
    except ValueError as exc:
        raise FaceSearchError(f"the webhook {text!r} is not a URL: {exc}", code="bad_webhook") from exc
    if len(text) > MAX_URL:
        raise FaceSearchError(f"the webhook URL is longer than {MAX_URL} characters", code="bad_webhook")
    if parts.scheme.lower() not in WEB_SCHEMES or not parts.hostname:
        raise FaceSearchError(f"the webhook must be an http or https URL with a host; got {text!r}", code="bad_webhook")
    if "@" in parts.netloc:
        raise FaceSearchError(
            "the webhook URL holds credentials (user:password@): they would be stored and shown to the case's "
            "users; use a URL without them (a token the receiver checks may go in its path)",
            code="bad_webhook",
        )
    return text


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx becomes an HTTPError: recorded as a failure


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def post_json(url: str, payload: dict[str, Any], timeout: float = TIMEOUT_S) -> str:
    """POST ``payload`` as JSON; the outcome in words (``delivered (HTTP n)`` or ``failed: why``)."""
    body = json.dumps(payload, sort_keys=True).encode()
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", "User-Agent": "facesearch-watch"}
    )
    try:
        with _opener.open(request, timeout=timeout) as response:
            return f"delivered (HTTP {response.status})"
    except urllib.error.HTTPError as exc:
        return f"failed: HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"failed: {reason}"[:MAX_STATUS]


class WebhookSender:
    """Delivers alerts from a few background threads and reports each outcome to ``record(alert_id, status)``.

    At most :data:`PARALLEL` deliveries run at once (an ingest of a watched person's thousand photos
    queues a thousand, it does not start a thousand threads); the threads are joined when the
    interpreter exits, so a CLI run finishes its deliveries (each bounded by the timeout) first.
    """

    def __init__(self, record: Callable[[int, str], None], timeout: float = TIMEOUT_S) -> None:
        self.record = record
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="webhook")
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()

    def send(self, alert_id: int, url: str, payload: dict[str, Any]) -> None:
        """Queue the delivery and return at once."""
        future = self._pool.submit(self._deliver, alert_id, url, payload)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _deliver(self, alert_id: int, url: str, payload: dict[str, Any]) -> None:
        try:
            self.record(alert_id, post_json(url, payload, self.timeout))
        except Exception:  # a thread's error would otherwise vanish
            log.exception("webhook delivery of alert %d failed", alert_id)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every delivery queued so far has recorded its outcome; False if some are still running."""
        with self._lock:
            pending = set(self._pending)
        _, not_done = wait(pending, timeout)
        return not not_done
