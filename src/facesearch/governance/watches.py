"""Watchlists (issue 13): a case watches for a person, and every later ingest raises alerts.

A watch belongs to an open case and holds the embeddings of one or more probe photos of one person
(the largest face of each photo, fused into their L2-normalised mean as a ``--same-person`` search
fuses them: models/template.py), a label, an expiry that is required, and an optional webhook
(governance/webhooks.py). Adding and removing are audited (``watch_add``, ``watch_remove``); removal
is soft: the row stays (who, when, which entry) and the watch stops.

Every batch the library's writer stores, through any interface and ingest engine (the writer is
the one path that stores faces; :meth:`WatchRegistry.screen` is one of its store listeners), is
compared with the active watches: not removed, not expired, of an open case, of this library's
model. A new face becomes an alert when a search with the watch's template would label it at least
``possible lead`` (search/scoring.py ``Scoring.leads``: the library's score and ``max_fmr`` threshold,
the labels of a search over the whole library); each alert is a row and a ``watch_alert`` entry with
its fmr and label. Faces the opt-out screen refused were never stored and raise nothing. The
ingesting user is not told: alerts are shown only to the case's users and admins
(:func:`may_watch`; auditors read them in the audit log).

Adding a watch is refused for an opted-out person (as a search probe is: the template or any one of
its photos), for an unknown or closed case, and for a user who does not work the case.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

import numpy as np
from sqlalchemy import select

from facesearch.errors import FaceSearchError
from facesearch.governance.cases import OPEN, Case, CaseError, get_case, list_cases, open_case
from facesearch.governance.db import immediate
from facesearch.governance.errors import PermissionDenied
from facesearch.governance.events import WatchEvent, record
from facesearch.governance.person_photos import Photo, embed_each
from facesearch.governance.types import User, actor_name
from facesearch.governance.webhooks import WebhookSender, check_webhook
from facesearch.models.template import mean_template
from facesearch.store.catalog import Catalog
from facesearch.store.governance_schema import AlertMarkRow, AlertRow, CaseRow, WatchRow
from facesearch.store.schema import utcnow
from facesearch.store.writer import LibraryWriter, StoredFaces

log = logging.getLogger(__name__)

MAX_PHOTOS = 10  # probe photos per watch, as a same-person search allows
MAX_DAYS = 366
MAX_LABEL = 200
ALERT_ACTOR = "system:watchlist"  # no user name holds ':' (governance/users.py), so none can be this


class EmbedLargestFace(Protocol):
    def __call__(self, photo: Photo) -> tuple[np.ndarray, str]:
        """The embedding of the largest face in a photo and the photo's SHA-256 (NoFaceFound if none)."""
        ...


class LeadOf(Protocol):
    row: int
    score: float
    fmr: float | None
    label: str


class LeadRule(Protocol):
    """The search operating point (search/scoring.py ``Scoring``): which faces a search would call leads."""

    def leads(self, template: np.ndarray, faces: np.ndarray, gallery_size: int) -> Sequence[LeadOf]: ...


class OptOutCheck(Protocol):
    """The opt-out registry (governance/optout.py), as search's probe check uses it."""

    def count(self) -> int: ...

    def is_opted_out(self, embeddings: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Watch:
    """A watch as callers see it (no embedding)."""

    id: int
    case_id: str
    label: str
    photos_sha256: list[str]
    expires_at: datetime
    webhook_url: str | None
    created_at: datetime
    created_by: str
    audit_seq: int
    removed_at: datetime | None
    removed_by: str | None
    status: str  # active, expired, removed, case closed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Alert:
    """An alert as callers see it: which watch, which new face, how strong, and the webhook's outcome."""

    id: int
    watch_id: int
    case_id: str
    watch_label: str
    face_id: int
    image_id: int
    score: float
    fmr: float | None
    label: str
    at: datetime
    audit_seq: int
    webhook_status: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def may_watch(case: Case, user: str | User | None) -> bool:
    """Who sees and manages a case's watches and alerts: the local operator, admins and the case's users.

    Not auditors (they read every ``watch_alert`` entry in the audit log, which is theirs to read), and
    not the ingesting user: an ingest must not tell whoever uploads a photo that someone is watched for.
    """
    if user is None or isinstance(user, str):
        return True
    return user.role == "admin" or user.name in case.users


def _check(case: Case, user: str | User | None, what: str) -> None:
    if not may_watch(case, user):
        raise PermissionDenied(f"{actor_name(user)} does not work case {case.case_id!r} and may not {what}")


def expiry(expires: date | datetime | str, now: datetime) -> datetime:
    """When a watch stops: the end of the given day (UTC). Required, in the future, at most a year ahead.

    Why a limit: a watch is standing surveillance of one person. Without an end it outlives the case's
    need (a forgotten watch keeps comparing every new photo, for years); like a warrant's term, it must
    be renewed by a person who states again that it is needed. A year (366 days) covers any term a
    case is reviewed within; the date is required so that nobody gets "forever" by leaving it out.
    """
    if isinstance(expires, str):
        try:
            expires = date.fromisoformat(expires.strip())
        except ValueError as exc:
            raise FaceSearchError(f"the expiry {expires!r} is not a date (YYYY-MM-DD)", code="bad_expiry") from exc
    day = expires.date() if isinstance(expires, datetime) else expires
    ends = datetime(day.year, day.month, day.day) + timedelta(days=1)
    if ends <= now:
        raise FaceSearchError(f"the expiry {day} is in the past: a watch must end in the future", code="bad_expiry")
    if day > (now + timedelta(days=MAX_DAYS)).date():
        raise FaceSearchError(
            f"the expiry {day} is more than {MAX_DAYS} days ahead: a watch lasts at most a year "
            "(add a new one when it ends, if the case still needs it)",
            code="bad_expiry",
        )
    return ends


def _status(row: WatchRow, case_status: str, now: datetime) -> str:
    if row.removed_at is not None:
        return "removed"
    if case_status != OPEN:
        return "case closed"
    return "expired" if row.expires_at <= now else "active"


class WatchRegistry:
    """The watches of one library and the alerts they raise (a store listener of the library's writer)."""

    def __init__(
        self,
        catalog: Catalog,
        writer: LibraryWriter,
        *,
        model_key: str,
        embed: EmbedLargestFace,
        rule: LeadRule,
        optouts: OptOutCheck,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.catalog = catalog
        self.writer = writer
        self.model_key = model_key
        self.embed = embed
        self.rule = rule
        self.optouts = optouts
        self.clock = clock  # when watches expire (a test moves it forward: time cannot be made to pass)
        self.webhooks = WebhookSender(self._delivered)
        writer.on_store(self.screen)

    # adding and removing --------------------------------------------------------------------------

    def _embed_photos(self, photos: Photo | Sequence[Photo]) -> tuple[np.ndarray, list[str]]:
        found = embed_each(self.embed, photos, what="watch", max_photos=MAX_PHOTOS)
        return np.stack([embedding for embedding, _ in found]), [digest for _, digest in found]

    def add(
        self,
        case_id: str,
        photos: Photo | Sequence[Photo],
        *,
        expires: date | datetime | str,
        label: str = "",
        webhook: str | None = None,
        actor: str | User | None = None,
    ) -> Watch:
        """Watch for the person in ``photos`` (largest face of each, fused) for an open case until ``expires``.

        Checked before any photo is read: the case (open, worked by ``actor``), the expiry, the label,
        the webhook. Then refused when the person opted out. Audited (``watch_add``).

        A webhook is for admins (and the local operator) only: the server POSTs to whatever address it
        names, loopback and private networks included (internal receivers are the normal case), so an
        investigator with a webhook could probe the server's network through the recorded outcome.
        """
        now = self.clock()
        case = open_case(self.catalog, case_id, actor, "watch for people in")
        _check(case, actor, "add watches to it")
        ends = expiry(expires, now)
        if not isinstance(label, str) or len(label) > MAX_LABEL:
            raise FaceSearchError(f"the label must be text of at most {MAX_LABEL} characters", code="bad_request")
        hook = check_webhook(webhook)
        if hook is not None and isinstance(actor, User) and actor.role != "admin":
            raise PermissionDenied(
                "only an admin may give a watch a webhook: the server would send requests to any address it names",
            )
        parts, digests = self._embed_photos(photos)
        template = mean_template(parts)
        if template is None:
            raise FaceSearchError("the photos' faces cancel out: use other photos", code="bad_request")
        if self.optouts.count() and (
            bool(self.optouts.is_opted_out(template[None]).any()) or bool(self.optouts.is_opted_out(parts).any())
        ):
            raise PermissionDenied("this person opted out of the library: nobody may watch for them", code="opted_out")
        with immediate(self.catalog) as s:
            case_row = s.scalar(select(CaseRow).where(CaseRow.case_id == case.case_id))
            if case_row is None or case_row.status != OPEN:
                raise CaseError(f"case {case.case_id!r} was closed meanwhile", "case_closed")
            row = WatchRow(
                case_pk=case_row.id,
                label=label.strip(),
                model_key=self.model_key,
                dim=int(parts.shape[1]),
                embeddings=parts.astype(np.float32).tobytes(),
                photos_sha256=digests,
                expires_at=ends,
                webhook_url=hook,
                created_at=now,
                created_by=actor_name(actor),
                audit_seq=0,
            )
            s.add(row)
            s.flush()
            facts = {
                "watch_id": row.id,
                "label": row.label,
                "photos_sha256": digests,
                "expires_at": ends.isoformat(),
                "webhook": hook is not None,  # never the URL: its path may hold the receiver's token
            }
            entry = record(self.catalog, WatchEvent("watch_add", case.case_id, facts), actor, session=s)
            row.audit_seq, row.created_by = entry.seq, entry.actor
            s.flush()
            return self._watch(row, case.case_id, case_row.status, now)

    def get(self, watch_id: int, user: str | User | None = None) -> Watch:
        """One watch (``no_watch`` when there is none; ``forbidden`` when ``user`` may not see its case)."""
        with self.catalog.session() as s:
            found = s.execute(
                select(WatchRow, CaseRow.case_id, CaseRow.status)
                .join(CaseRow, CaseRow.id == WatchRow.case_pk)
                .where(WatchRow.id == int(watch_id))
            ).first()
            if found is None:
                raise FaceSearchError(f"no watch {watch_id}", code="no_watch")
            watch = self._watch(found[0], found[1], found[2], self.clock())
        _check(get_case(self.catalog, watch.case_id), user, f"see watch {watch_id}")
        return watch

    def remove(self, watch_id: int, *, actor: str | User | None = None) -> Watch:
        """Stop a watch (its row stays, with who removed it and when). Audited (``watch_remove``)."""
        watch = self.get(watch_id, actor)
        if watch.removed_at is not None:
            raise FaceSearchError(
                f"watch {watch_id} was removed by {watch.removed_by} at {watch.removed_at}", code="watch_removed"
            )
        now = self.clock()
        with immediate(self.catalog) as s:
            row = s.get(WatchRow, int(watch_id))
            if row is None or row.removed_at is not None:
                raise FaceSearchError(f"watch {watch_id} was removed meanwhile", code="watch_removed")
            facts = {"watch_id": row.id, "label": row.label}
            entry = record(self.catalog, WatchEvent("watch_remove", watch.case_id, facts), actor, session=s)
            row.removed_at, row.removed_by, row.removed_seq = now, entry.actor, entry.seq
            s.flush()
            case_status = s.scalar(select(CaseRow.status).where(CaseRow.id == row.case_pk)) or OPEN
            return self._watch(row, watch.case_id, case_status, now)

    def list_watches(self, user: str | User | None = None, case_id: str | None = None) -> list[Watch]:
        """The watches of the cases ``user`` may watch (``case_id``: of that case only, ``forbidden`` if not theirs)."""
        cases = self._cases(user, case_id)
        if not cases:
            return []
        now = self.clock()
        with self.catalog.session() as s:
            rows = s.execute(
                select(WatchRow, CaseRow.case_id, CaseRow.status)
                .join(CaseRow, CaseRow.id == WatchRow.case_pk)
                .where(CaseRow.case_id.in_(cases))
                .order_by(WatchRow.id)
            ).all()
            return [self._watch(r[0], r[1], r[2], now) for r in rows]

    def _cases(self, user: str | User | None, case_id: str | None) -> list[str]:
        if case_id is not None:
            case = get_case(self.catalog, case_id)
            _check(case, user, "see its watches or alerts")
            return [case.case_id]
        return [c.case_id for c in list_cases(self.catalog) if may_watch(c, user)]

    @staticmethod
    def _watch(row: WatchRow, case_id: str, case_status: str, now: datetime) -> Watch:
        return Watch(
            row.id,
            case_id,
            row.label,
            list(row.photos_sha256 or []),
            row.expires_at,
            row.webhook_url,
            row.created_at,
            row.created_by,
            row.audit_seq,
            row.removed_at,
            row.removed_by,
            _status(row, case_status, now),
        )

    # alerts ---------------------------------------------------------------------------------------

    def alerts(self, user: str | User | None = None, case_id: str | None = None) -> list[Alert]:
        """The alerts of the cases ``user`` may watch, newest first (``case_id``: that case's only)."""
        cases = self._cases(user, case_id)
        if not cases:
            return []
        with self.catalog.session() as s:
            rows = s.execute(
                select(AlertRow, CaseRow.case_id, WatchRow.label)
                .join(CaseRow, CaseRow.id == AlertRow.case_pk)
                .join(WatchRow, WatchRow.id == AlertRow.watch_id)
                .where(CaseRow.case_id.in_(cases))
                .order_by(AlertRow.id.desc())
            ).all()
            return [
                Alert(
                    a.id,
                    a.watch_id,
                    case,
                    watch_label,
                    a.face_id,
                    a.image_id,
                    a.score,
                    a.fmr,
                    a.label,
                    a.at,
                    a.audit_seq,
                    a.webhook_status,
                )
                for a, case, watch_label in rows
            ]

    def last_seen(self, user: str | User | None) -> int:
        """The newest alert id ``user`` marked as seen (0: none)."""
        with self.catalog.session() as s:
            return int(s.scalar(select(AlertMarkRow.last_seen).where(AlertMarkRow.user_key == actor_name(user))) or 0)

    def mark_seen(self, user: str | User | None, up_to: int) -> int:
        """Mark the alerts up to id ``up_to`` as seen by ``user`` (never moves back); returns the mark."""
        name = actor_name(user)
        with immediate(self.catalog) as s:
            row = s.get(AlertMarkRow, name)
            if row is None:
                row = AlertMarkRow(user_key=name, last_seen=0)
                s.add(row)
            row.last_seen, row.at = max(int(row.last_seen or 0), int(up_to)), utcnow()
            s.flush()
            return int(row.last_seen)

    # the writer's store listener ------------------------------------------------------------------

    def _active(self, now: datetime) -> list[tuple[int, int, str, str, np.ndarray, str | None]]:
        """(watch id, case pk, case id, label, template, webhook) of every watch that works now."""
        with self.catalog.session() as s:
            rows = s.execute(
                select(WatchRow, CaseRow.case_id)
                .join(CaseRow, CaseRow.id == WatchRow.case_pk)
                .where(WatchRow.removed_at.is_(None), WatchRow.expires_at > now, CaseRow.status == OPEN)
                .where(WatchRow.model_key == self.model_key)
                .order_by(WatchRow.id)
            ).all()
            active = []
            for row, case_id in rows:
                parts = np.frombuffer(row.embeddings, dtype=np.float32).reshape(-1, row.dim)
                template = mean_template(parts)
                if template is not None:
                    active.append((row.id, row.case_pk, case_id, row.label, template, row.webhook_url))
            return active

    def screen(self, stored: StoredFaces) -> None:
        """Compare faces just stored with every active watch; each lead becomes an alert (row + entry)."""
        now = self.clock()
        watches = self._active(now)
        if not watches or len(stored.face_ids) == 0:
            return
        gallery = len(self.writer.index.current)  # a search now would cover the whole library
        found = []
        for watch_id, case_pk, case_id, _, template, hook in watches:
            for lead in self.rule.leads(template, stored.embeddings, gallery):
                found.append((watch_id, case_pk, case_id, hook, lead))
        if not found:
            return
        sends: list[tuple[int, str, dict[str, Any]]] = []
        with immediate(self.catalog) as s:
            for watch_id, case_pk, case_id, hook, lead in found:
                face_id, image_id = int(stored.face_ids[lead.row]), int(stored.image_ids[lead.row])
                row = AlertRow(
                    watch_id=watch_id,
                    case_pk=case_pk,
                    face_id=face_id,
                    image_id=image_id,
                    score=lead.score,
                    fmr=lead.fmr,
                    label=lead.label,
                    at=now,
                    audit_seq=0,
                    webhook_status="pending" if hook else None,
                )
                s.add(row)
                s.flush()
                facts = {"alert_id": row.id, "watch_id": watch_id, "face_id": face_id, "image_id": image_id,
                         "score": lead.score, "fmr": lead.fmr, "label": lead.label}  # fmt: skip
                row.audit_seq = record(self.catalog, WatchEvent("watch_alert", case_id, facts), ALERT_ACTOR, s).seq
                if hook:
                    payload = {"alert_id": row.id, "case_id": case_id, "watch_id": watch_id, "label": lead.label,
                               "fmr": lead.fmr, "at": now.isoformat() + "Z"}  # fmt: skip
                    sends.append((row.id, hook, payload))
        log.info("watchlist: %d alert(s) from %d new faces", len(found), len(stored.face_ids))
        for alert_id, hook, payload in sends:  # after the commit: the thread records on a row that exists
            self.webhooks.send(alert_id, hook, payload)

    def _delivered(self, alert_id: int, status: str) -> None:
        with self.catalog.session() as s, s.begin():
            row = s.get(AlertRow, alert_id)
            if row is not None:
                row.webhook_status, row.webhook_at = status, utcnow()
