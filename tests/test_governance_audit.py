"""The audit log: hash chain, tamper detection (edits made with plain SQL), concurrent writers, export.

Every test runs on a SQLite catalog and on a PostgreSQL one (the ``catalog_target`` fixture).
"""

from __future__ import annotations

import io
import json
import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from facesearch.governance import AuditLog, SearchPurpose, verify_jsonl
from facesearch.governance.audit import GENESIS_HASH, entry_hash
from facesearch.governance.errors import AuditError
from facesearch.store.catalog import Catalog


@pytest.fixture
def catalog(catalog_target: str | Path) -> Catalog:
    catalog = Catalog(catalog_target)
    yield catalog
    catalog.close()


def filled(catalog: Catalog, n: int = 20) -> AuditLog:
    log = AuditLog(catalog)
    for i in range(1, n + 1):
        log.append(f"user{i % 3}", "search", {"probe_sha256": f"{i:064x}", "shown": [i, i + 1]}, case_id=f"C{i % 4}")
    return log


TRIGGERS = {
    "audit_log_no_update": "audit_log",
    "audit_log_no_delete": "audit_log",
    "audit_head_no_delete": "audit_head",
}


def tamper(catalog: Catalog, *statements: str) -> None:
    """What an attacker with a plain SQL client could do (the append-only triggers dropped first)."""
    with catalog.engine.begin() as con:
        for trigger, table in TRIGGERS.items():
            on = "" if catalog.is_sqlite else f" ON {table}"
            con.exec_driver_sql(f"DROP TRIGGER IF EXISTS {trigger}{on}")
        for statement in statements:
            con.exec_driver_sql(statement)


def test_chain_of_twenty_entries_verifies(catalog: Catalog) -> None:
    log = filled(catalog)
    check = log.verify()
    assert check.ok and check.entries == 20 and check.first_bad_sequence is None and check.problem is None
    entries = log.entries(limit=None)
    assert [e.seq for e in entries] == list(range(1, 21))
    assert entries[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:], strict=False))
    assert log.head() == (20, entries[-1].hash) == (check.head_sequence, check.head_hash)
    assert entries[4].details == {"probe_sha256": f"{5:064x}", "shown": [5, 6]}
    assert datetime.fromisoformat(entries[0].at).tzinfo is not None


@pytest.mark.parametrize(
    ("statements", "first_bad", "words"),
    [
        (['UPDATE audit_log SET details = \'{"probe_sha256":"forged"}\' WHERE seq = 5'], 5, "edited"),
        (["UPDATE audit_log SET actor = 'someone-else' WHERE seq = 5"], 5, "edited"),
        (["DELETE FROM audit_log WHERE seq = 7"], 7, "missing"),
        (
            [
                "UPDATE audit_log SET seq = -3 WHERE seq = 3",
                "UPDATE audit_log SET seq = 3 WHERE seq = 4",
                "UPDATE audit_log SET seq = 4 WHERE seq = -3",
            ],
            3,
            "does not link",
        ),
        (["DELETE FROM audit_log WHERE seq = 20"], 20, "missing from the end"),
        (["DELETE FROM audit_log WHERE seq >= 18"], 18, "18-20 is missing from the end"),
        (
            [
                "UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 12",
                "UPDATE audit_log SET seq = seq - 999 WHERE seq > 1000",
            ],
            12,
            "missing",
        ),  # fmt: skip
    ],
    ids=["edit-details-5", "edit-actor-5", "delete-7", "swap-3-4", "delete-last", "truncate-3", "renumber"],
)
def test_tampering_is_detected_at_the_first_bad_entry(
    catalog: Catalog, statements: list[str], first_bad: int, words: str
) -> None:
    log = filled(catalog)
    tamper(catalog, *statements)
    check = log.verify()
    assert not check.ok
    assert check.first_bad_sequence == first_bad
    assert words in check.problem


def test_rehashed_last_entry_is_caught_by_the_head_and_a_rewritten_head_by_an_anchor(catalog: Catalog) -> None:
    log = filled(catalog)
    anchor = log.head()
    last = log.entries(after=19)[0]
    forged = entry_hash(last.prev_hash, 20, last.at, last.actor, last.action, last.case_id, last.purpose, "{}")
    tamper(catalog, f"UPDATE audit_log SET details = '{{}}', hash = '{forged}' WHERE seq = 20")
    check = log.verify()
    assert not check.ok and check.first_bad_sequence == 20 and "head" in check.problem
    # An attacker who also rewrites the head gets a consistent database...
    tamper(catalog, f"UPDATE audit_head SET hash = '{forged}'")
    assert log.verify().ok
    # ...which an anchor kept outside the database still exposes.
    check = log.verify(anchor=anchor)
    assert not check.ok and check.first_bad_sequence == 20 and "anchor" in check.problem


def test_appends_after_truncation_keep_the_gap_visible_and_a_lost_head_blocks_appends(catalog: Catalog) -> None:
    log = filled(catalog, 5)
    tamper(catalog, "DELETE FROM audit_log WHERE seq = 5")
    entry = log.append("ana", "search", {})
    assert entry.seq == 6  # numbering follows the head, not the damaged table
    check = log.verify()
    assert not check.ok and check.first_bad_sequence == 5


def test_a_lost_head_blocks_appends_and_an_entry_forged_after_the_head_is_found(catalog: Catalog) -> None:
    log = filled(catalog, 5)
    last = log.entries(after=4)[0]
    forged = entry_hash(last.hash, 6, last.at, "mallory", "search", None, None, "{}")
    tamper(
        catalog,
        "INSERT INTO audit_log (seq, at, actor, action, details, prev_hash, hash) "
        f"VALUES (6, '{last.at}', 'mallory', 'search', '{{}}', '{last.hash}', '{forged}')",
    )
    check = log.verify()
    assert not check.ok and check.first_bad_sequence == 6 and "without updating the head" in check.problem
    tamper(catalog, "DELETE FROM audit_log WHERE seq = 6", "DELETE FROM audit_head")
    with pytest.raises(AuditError):
        log.append("ana", "search", {})
    check = log.verify()
    assert not check.ok and "head row is missing" in check.problem


def test_triggers_refuse_casual_edits(catalog: Catalog) -> None:
    log = filled(catalog, 3)
    with pytest.raises((IntegrityError, OperationalError), match="append-only"), catalog.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE audit_log SET actor = 'x' WHERE seq = 2")
    with pytest.raises((IntegrityError, OperationalError), match="append-only"), catalog.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM audit_log")
    assert log.verify().ok and log.verify().entries == 3


def _append_many(url: str, worker: str, count: int, barrier: object) -> None:
    catalog = Catalog(url)
    log = AuditLog(catalog)
    for i in range(count):
        barrier.wait()  # type: ignore[attr-defined]  # both append at once, every round: they interleave
        log.append(worker, "concurrent", {"i": i})
    catalog.close()


def test_concurrent_appends_from_two_processes_keep_one_valid_chain(catalog: Catalog) -> None:
    log = filled(catalog, 2)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    workers = [ctx.Process(target=_append_many, args=(catalog.url, f"p{i}", 40, barrier)) for i in range(2)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(60)
    assert [p.exitcode for p in workers] == [0, 0]
    check = log.verify()
    assert check.ok, check.problem
    entries = log.entries(limit=None)
    assert [e.seq for e in entries] == list(range(1, 83))
    assert len({e.prev_hash for e in entries}) == 82  # no two entries link to the same predecessor
    for worker in ("p0", "p1"):
        assert [e.details["i"] for e in entries if e.actor == worker] == list(range(40))
    actors = [e.actor for e in entries[2:]]
    assert any(a != b for a, b in zip(actors, actors[1:], strict=False))  # they really interleaved


def test_filters_purpose_and_export(catalog: Catalog, tmp_path: Path) -> None:
    log = filled(catalog, 10)
    purpose = SearchPurpose("CASE-9", "find a missing person", legal_basis="consent of the family")
    entry = log.append("ana", "search", {"probe_sha256": "ab" * 32}, purpose=purpose)
    assert entry.case_id == "CASE-9" and entry.purpose == "find a missing person"
    assert entry.details["legal_basis"] == "consent of the family"
    assert [e.seq for e in log.entries(actor="user1")] == [1, 4, 7, 10]
    assert [e.seq for e in log.entries(case_id="C2")] == [2, 6, 10]
    assert [e.seq for e in log.entries(limit=3, after=4)] == [5, 6, 7]
    assert log.entries(since=datetime.now(UTC) + timedelta(minutes=1)) == []
    assert len(log.entries(until=datetime.now(UTC) + timedelta(minutes=1))) == 11
    assert log.entries(since=entry.at) == [entry]

    path = tmp_path / "audit.jsonl"
    assert log.export_jsonl(path) == 11
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1])["hash"] == log.head()[1]
    assert verify_jsonl(path).ok and verify_jsonl(path).entries == 11
    buffer = io.StringIO()
    assert log.export_jsonl(buffer, after=8) == 3
    assert verify_jsonl(buffer.getvalue().splitlines()).ok  # a partial export checks from its first entry
    forged = json.loads(lines[3])
    forged["details"]["shown"] = [999]
    lines[3] = json.dumps(forged)
    check = verify_jsonl(lines)
    assert not check.ok and check.first_bad_sequence == 4
    check = verify_jsonl(lines[:2] + lines[3:])
    assert not check.ok and check.first_bad_sequence == 3
