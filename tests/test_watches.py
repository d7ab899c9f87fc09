"""Watchlists, alerts and webhooks (issue 13, "Watchlists"), through the Python API and the CLI.

A case watches for Barack Obama from two of his photos (obama1, obama2); later ingests of another
photo of him (obama.jpg) must raise exactly one alert, and photos of other people (Joe Biden, Kit
Harington, an LFW person) none. Real photos from ../shared/data; nothing of them is committed.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from facesearch import Library
from facesearch.errors import FaceSearchError
from facesearch.governance import AuditLog, add_user
from facesearch.governance.cases import close_case, create_case
from facesearch.governance.errors import PermissionDenied
from facesearch.governance.watches import ALERT_ACTOR
from facesearch.store.schema import ImageRow, utcnow
from tests.conftest import new_engine_library
from tests.helpers import cli_ok, run_cli

PURPOSE = "find the man seen at the bakery robbery"


@pytest.fixture
def photos(shared_data: Path) -> dict[str, Path]:
    people = shared_data / "face_recognition_examples" / "by_identity"
    return {
        "watch_a": people / "barack_obama" / "obama1.jpg",
        "watch_b": people / "barack_obama" / "obama2.jpg",
        "person": people / "barack_obama" / "obama.jpg",
        "biden": people / "joe_biden" / "biden.jpg",
        "kit": people / "kit_harington" / "john1.jpg",
        "lfw": shared_data / "lfw-dev" / "images" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg",
    }


@pytest.fixture
def lib(tmp_path: Path) -> Iterator[Library]:
    """A new library with one open case, C-1, worked by the API user ivy. Made by ``new_engine_library``: no
    jitter, and HOG without upsampling (issue 11, the suite's speed: each test detects faces in full-size photos,
    whose faces are large; the detector's settings are not the subject)."""
    with Library.open(new_engine_library(tmp_path / "lib")) as library:
        add_user(library.catalog, "ivy", "investigator")
        create_case(library.catalog, "C-1", PURPOSE, users=["ivy"], actor="op")
        yield library


def tomorrow() -> date:
    return (utcnow() + timedelta(days=1)).date()


def image_id(lib: Library, path: Path) -> int:
    with lib.catalog.session() as s:
        found = s.scalar(select(ImageRow.id).where(ImageRow.source == str(path)))
    assert found is not None, f"{path} was not indexed"
    return int(found)


def test_a_watch_alerts_on_a_new_photo_of_the_person_and_not_on_others(lib: Library, photos: dict) -> None:
    """Issue 13: Library.index of another photo of the watched person raises one alert (row + audit
    entry, label and fmr of the search operating point); three other people raise none."""
    watch = lib.watches.add("C-1", [photos["watch_a"], photos["watch_b"]], expires=tomorrow(), label="suspect 1")
    assert watch.status == "active" and len(watch.photos_sha256) == 2
    others = [photos["biden"], photos["kit"], photos["lfw"]]
    report = lib.index([photos["person"], *others], workers=1)
    assert report.indexed == 4 and not report.rejected
    assert "alert" not in json.dumps(report.to_dict())  # the ingesting user is not told
    alerts = lib.watches.alerts()
    assert [(a.watch_id, a.image_id, a.case_id) for a in alerts] == [(watch.id, image_id(lib, photos["person"]), "C-1")]
    alert = alerts[0]
    assert alert.label in ("match", "possible lead") and alert.fmr is not None and alert.fmr <= 1e-3
    assert alert.webhook_status is None
    entries = AuditLog(lib.catalog).entries(action="watch_alert", limit=None)
    assert [(e.seq, e.actor, e.case_id, e.details["face_id"]) for e in entries] == [
        (alert.audit_seq, ALERT_ACTOR, "C-1", alert.face_id)
    ]
    assert [e.details["watch_id"] for e in AuditLog(lib.catalog).entries(action="watch_add", limit=None)] == [watch.id]
    assert AuditLog(lib.catalog).verify().ok  # the watch and alert rows name entries the log holds


def test_no_alert_for_faces_the_opt_out_screen_refused(lib: Library, photos: dict) -> None:
    """Issue 13: a watched person who opts out afterwards raises nothing: the writer's opt-out screen refuses
    their faces, which are never stored, so the watchlist never sees them."""
    lib.watches.add("C-1", [photos["watch_a"]], expires=tomorrow())
    lib.optouts.add([photos["watch_b"]], actor="op")
    report = lib.index([photos["person"], photos["biden"]], workers=1)
    assert report.indexed == 1  # Biden's photo; Obama's was refused whole
    assert lib.watches.alerts() == []


@pytest.mark.parametrize("engine", ["local", "batched"])
def test_every_ingest_engine_raises_the_alert(lib: Library, photos: dict, engine: str) -> None:
    """Issue 13: "every later ingest, through any path": worker processes (local engine) and the batched
    engine store through the same writer, whose store listener raises the alert."""
    watch = lib.watches.add("C-1", [photos["watch_a"]], expires=tomorrow())
    report = lib.index([photos["person"], photos["biden"]], workers=2, engine=engine)
    assert report.indexed == 2
    assert [(a.watch_id, a.image_id) for a in lib.watches.alerts()] == [(watch.id, image_id(lib, photos["person"]))]


@pytest.mark.parametrize("how", ["expired", "case closed", "removed"])
def test_a_stopped_watch_raises_no_alert(lib: Library, photos: dict, how: str) -> None:
    """Issue 13: expired watches, watches of closed cases and removed watches stop."""
    watch = lib.watches.add("C-1", [photos["watch_a"]], expires=tomorrow())
    if how == "expired":
        later = utcnow() + timedelta(days=2)
        lib.watches.clock = lambda: later  # time cannot be made to pass; the registry's clock can
    elif how == "case closed":
        close_case(lib.catalog, "C-1", actor="op")
    else:
        removed = lib.watches.remove(watch.id, actor="op")
        assert removed.removed_by == "op" and removed.status == "removed"
        assert [e.details["watch_id"] for e in AuditLog(lib.catalog).entries(action="watch_remove")] == [watch.id]
    assert lib.watches.get(watch.id).status == how
    assert lib.index([photos["person"]], workers=1).indexed == 1
    assert lib.watches.alerts() == []


def test_adding_a_watch_is_refused_for_bad_expiries_closed_or_foreign_cases_and_opted_out_people(
    lib: Library, photos: dict
) -> None:
    """Issue 13: the expiry is required, in the future, at most a year ahead; the case must be open and
    worked by the user; an opted-out person cannot be watched for (as they cannot be searched for)."""
    photo = [photos["watch_a"]]
    today = utcnow().date()
    for expires, words in [
        (today - timedelta(days=1), "in the past"),
        (today + timedelta(days=400), "at most a year"),
        ("31/12/2027", "not a date"),
    ]:
        with pytest.raises(FaceSearchError, match=words) as caught:
            lib.watches.add("C-1", photo, expires=expires)
        assert caught.value.code == "bad_expiry"
    with pytest.raises(FaceSearchError) as caught:
        lib.watches.add("C-9", photo, expires=tomorrow())
    assert caught.value.code == "no_case"
    outsider = add_user(lib.catalog, "otto", "investigator")[0]
    with pytest.raises(PermissionDenied):
        lib.watches.add("C-1", photo, expires=tomorrow(), actor=outsider)
    with pytest.raises(FaceSearchError) as caught:
        lib.watches.add("C-1", photo, expires=tomorrow(), webhook="https://user:secret@hooks.example/x")
    assert caught.value.code == "bad_webhook"
    with pytest.raises(FaceSearchError) as caught:
        lib.watches.add("C-1", photo, expires=tomorrow(), webhook="file:///etc/passwd")
    assert caught.value.code == "bad_webhook"
    lib.optouts.add([photos["watch_b"]], actor="op")
    with pytest.raises(PermissionDenied) as caught:
        lib.watches.add("C-1", photo, expires=tomorrow())
    assert caught.value.code == "opted_out"
    close_case(lib.catalog, "C-1", actor="op")
    with pytest.raises(FaceSearchError) as caught:
        lib.watches.add("C-1", photo, expires=tomorrow())
    assert caught.value.code == "case_closed"
    assert lib.watches.list_watches() == []
    assert AuditLog(lib.catalog).entries(action="watch_add") == []


def test_only_the_case_users_and_admins_see_its_watches_and_alerts(lib: Library, photos: dict) -> None:
    """Issue 13: alerts are shown only to users of the case (and admins); others get nothing or 403."""
    lib.watches.add("C-1", [photos["watch_a"]], expires=tomorrow())
    lib.index([photos["person"]], workers=1)
    ivy = next(u for u in _users(lib) if u.name == "ivy")
    otto = add_user(lib.catalog, "otto", "investigator")[0]
    auditor = add_user(lib.catalog, "audrey", "auditor")[0]
    admin = add_user(lib.catalog, "ada", "admin")[0]
    assert len(lib.watches.alerts(ivy)) == len(lib.watches.alerts(admin)) == 1
    assert lib.watches.alerts(otto) == [] and lib.watches.alerts(auditor) == []
    with pytest.raises(PermissionDenied):
        lib.watches.alerts(otto, case_id="C-1")
    with pytest.raises(PermissionDenied):
        lib.watches.list_watches(otto, case_id="C-1")


def _users(lib: Library) -> list:
    from facesearch.governance import list_users

    return list_users(lib.catalog)


class _Hook(http.server.BaseHTTPRequestHandler):
    """A webhook receiver on loopback: keeps each body; answers once ``release`` is set."""

    bodies: list[dict]
    received: threading.Event
    release: threading.Event

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        length = int(self.headers["Content-Length"])
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        type(self).received.set()
        type(self).release.wait(30)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook_server() -> Iterator[tuple[str, type[_Hook]]]:
    handler = type("Hook", (_Hook,), {"bodies": [], "received": threading.Event(), "release": threading.Event()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/case-1", handler
    finally:
        handler.release.set()
        server.shutdown()
        server.server_close()


def test_the_webhook_receives_exactly_the_alert_without_holding_the_ingest(
    lib: Library, photos: dict, hook_server: tuple[str, type[_Hook]]
) -> None:
    """Issue 13: a watch's webhook gets one small JSON per alert (no image, embedding or path). The
    receiver answers only after the ingest has returned: an ingest that waited for it would have timed
    the delivery out (5 s) and recorded a failure."""
    url, handler = hook_server
    watch = lib.watches.add("C-1", [photos["watch_a"]], expires=tomorrow(), webhook=url, label="suspect 1")
    lib.index([photos["person"], photos["biden"]], workers=1)
    assert [a.webhook_status for a in lib.watches.alerts()] == ["pending"]  # the ingest did not wait
    handler.release.set()
    assert lib.watches.webhooks.wait(timeout=30)
    [alert] = lib.watches.alerts()
    assert alert.webhook_status == "delivered (HTTP 204)"
    assert handler.bodies == [
        {
            "alert_id": alert.id,
            "case_id": "C-1",
            "watch_id": watch.id,
            "label": alert.label,
            "fmr": alert.fmr,
            "at": alert.at.isoformat() + "Z",
        }
    ]


def test_a_dead_webhook_leaves_the_ingest_successful_and_the_failure_recorded(lib: Library, photos: dict) -> None:
    """Issue 13: nothing listens on the webhook's port; the ingest succeeds, the alert records the failure."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed when the block ends: nothing listens there
    lib.watches.add("C-1", [photos["watch_a"]], expires=tomorrow(), webhook=f"http://127.0.0.1:{port}/hook")
    report = lib.index([photos["person"]], workers=1)
    assert report.indexed == 1 and not report.rejected
    assert lib.watches.webhooks.wait(timeout=30)
    [alert] = lib.watches.alerts()
    assert alert.webhook_status is not None and alert.webhook_status.startswith("failed:")
    assert "refused" in alert.webhook_status.lower()


def test_the_cli_adds_lists_and_removes_watches_and_an_index_raises_alerts(tmp_path: Path, photos: dict) -> None:
    """Issue 13: ``facesearch watch add|list|remove`` and ``facesearch alerts``; ``index`` in the CLI raises
    the alert; ``watch remove`` shows what it stops, has --dry-run and needs --yes off a terminal."""
    folder = str(new_engine_library(tmp_path / "lib"))  # as ``lib``
    cli_ok("case", "create", "C-1", "--purpose", PURPOSE, "-l", folder)
    expires = tomorrow().isoformat()
    added = json.loads(
        cli_ok(
            "watch",
            "add",
            "--case",
            "C-1",
            "--expires",
            expires,
            "--label",
            "suspect 1",
            "-l",
            folder,
            "--json",
            str(photos["watch_a"]),
            str(photos["watch_b"]),
        ).stdout
    )
    assert added["case_id"] == "C-1" and added["status"] == "active"
    bad = run_cli("watch", "add", "--case", "C-1", "--expires", "2020-01-01", "-l", folder, str(photos["watch_a"]))
    assert bad.exit_code == 2 and "past" in bad.output
    cli_ok("index", str(photos["person"]), str(photos["biden"]), "-l", folder, "--workers", "1")
    alerts = json.loads(cli_ok("alerts", "--case", "C-1", "--json", "-l", folder).stdout)["alerts"]
    assert [(a["watch_id"], a["case_id"]) for a in alerts] == [(added["id"], "C-1")]
    listed = json.loads(cli_ok("watch", "list", "--json", "-l", folder).stdout)["watches"]
    assert [w["id"] for w in listed] == [added["id"]]
    dry = cli_ok("watch", "remove", str(added["id"]), "--dry-run", "-l", folder)
    assert "suspect 1" in dry.output and "dry run" in dry.output
    refused = run_cli("watch", "remove", str(added["id"]), "-l", folder)  # not a terminal, no --yes
    assert refused.exit_code == 2 and "nothing was removed" in refused.stderr and "--yes" in refused.stderr
    assert json.loads(cli_ok("watch", "list", "--json", "-l", folder).stdout)["watches"][0]["status"] == "active"
    cli_ok("watch", "remove", str(added["id"]), "--yes", "-l", folder)
    assert json.loads(cli_ok("watch", "list", "--json", "-l", folder).stdout)["watches"][0]["status"] == "removed"
    cli_ok("index", str(photos["watch_b"]), "-l", folder, "--workers", "1")
    assert len(json.loads(cli_ok("alerts", "--json", "-l", folder).stdout)["alerts"]) == 1  # no new one


def test_watches_and_alerts_on_a_postgresql_catalog(tmp_path: Path, postgres_url: str, photos: dict) -> None:
    """Issue 13: the same watch and alert on a catalog in PostgreSQL (migration 0006 there, its transactions)."""
    with Library.open(new_engine_library(tmp_path / "pg", catalog_url=postgres_url)) as library:  # as ``lib``
        create_case(library.catalog, "C-1", PURPOSE, actor="op")
        watch = library.watches.add("C-1", [photos["watch_a"]], expires=tomorrow())
        library.index([photos["person"], photos["biden"]], workers=1)
        alerts = library.watches.alerts()
        assert [(a.watch_id, a.image_id) for a in alerts] == [(watch.id, image_id(library, photos["person"]))]
        assert AuditLog(library.catalog).verify().ok
