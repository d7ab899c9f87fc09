"""Governance: users, API keys, roles and search purposes (real SQLite catalog, no models needed)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from facesearch.governance import (
    ROLE_PERMISSIONS,
    ROLES,
    AuditLog,
    PermissionDenied,
    PurposeRequired,
    SearchPurpose,
    UserError,
    add_user,
    authenticate,
    check_purpose,
    list_users,
    require,
    revoke_user,
    rotate_key,
    set_requirements,
)
from facesearch.governance.users import get_user
from facesearch.store.catalog import Catalog
from facesearch.store.schema import CollectionRow


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    catalog = Catalog(tmp_path / "catalog.sqlite")
    yield catalog
    catalog.close()


def database_bytes(catalog: Catalog) -> bytes:
    return b"".join(p.read_bytes() for p in catalog.path.parent.glob(catalog.path.name + "*"))


def test_key_is_shown_once_and_only_a_salted_hash_is_stored(catalog: Catalog) -> None:
    user, key = add_user(catalog, "ana", "investigator", actor="admin-setup")
    other, other_key = add_user(catalog, "ben", "investigator")
    assert key.startswith("fs_") and len(key) > 50 and key != other_key
    assert user.key_id in key and not hasattr(user, "key")
    with sqlite3.connect(catalog.path) as con:
        rows = con.execute("SELECT * FROM governance_users").fetchall()
    stored = " ".join(str(value) for row in rows for value in row)
    secret = key.split("_", 2)[2]
    assert key not in stored and secret not in stored
    assert secret.encode() not in database_bytes(catalog)  # nowhere in the file, the WAL included
    hashes = [row[0] for row in sqlite3.connect(catalog.path).execute("SELECT key_hash FROM governance_users")]
    assert all(h.startswith("scrypt$") for h in hashes)
    assert hashes[0].split("$")[4] != hashes[1].split("$")[4]  # a salt per key
    # Adding a user is audited, with the key id and never the key.
    entry = AuditLog(catalog).entries(action="user_add")[0]
    assert entry.actor == "admin-setup" and entry.details["key_id"] == user.key_id
    assert secret not in str(entry.details)


def test_authenticate_revoke_and_rotate(catalog: Catalog) -> None:
    user, key = add_user(catalog, "ana", "investigator")
    found = authenticate(catalog, key)
    assert found is not None and found.name == "ana" and found.role == "investigator"
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    for bad in (tampered, "", "fs_", "not-a-key", key[:20], "fs_" + "0" * 12 + "_" + key[16:]):
        assert authenticate(catalog, bad) is None
    same_user, new_key = rotate_key(catalog, "ana")
    assert authenticate(catalog, key) is None and authenticate(catalog, new_key).name == "ana"
    assert same_user.key_id != user.key_id
    revoked = revoke_user(catalog, "ana", actor="boss")
    assert revoked.revoked_at is not None and not revoked.active
    assert authenticate(catalog, new_key) is None
    assert [u.name for u in list_users(catalog, include_revoked=False)] == []
    assert [u.name for u in list_users(catalog)] == ["ana"]
    actions = [e.action for e in AuditLog(catalog).entries()]
    assert actions == ["user_add", "user_rotate_key", "user_revoke"]
    with pytest.raises(UserError) as err:
        rotate_key(catalog, "ana")
    assert err.value.code == "no_user"


def test_user_errors(catalog: Catalog) -> None:
    add_user(catalog, "ana", "auditor")
    with pytest.raises(UserError) as err:
        add_user(catalog, "ana", "admin")
    assert err.value.code == "user_exists"
    with pytest.raises(UserError) as err:
        add_user(catalog, "carl", "superuser")
    assert err.value.code == "unknown_role" and "investigator" in err.value.message
    for bad in ("", "cli:root", "with space", "x" * 101):
        with pytest.raises(UserError) as err:
            add_user(catalog, bad, "auditor")
        assert err.value.code == "bad_name"
    with pytest.raises(UserError) as err:
        get_user(catalog, "nobody")
    assert err.value.code == "no_user"
    assert len(list_users(catalog)) == 1  # failed attempts left nothing behind


def test_role_table_and_require(catalog: Catalog) -> None:
    expected = {
        "search", "verify", "ingest", "remove", "erase", "optout", "read_audit", "export_audit",
        "manage_users", "manage_collections", "review", "open_case", "read_cases", "watch",  # the last 3: issue 13
        "people",  # issue 14
    }  # fmt: skip
    assert set(ROLE_PERMISSIONS) == expected
    assert all(roles <= set(ROLES) and "admin" in roles for roles in ROLE_PERMISSIONS.values())
    users = {role: add_user(catalog, f"u-{role}", role)[0] for role in ROLES}
    require(users["investigator"], "search")
    require(users["auditor"], "export_audit")
    require(users["ingester"], "ingest")
    for role, action in [("auditor", "search"), ("investigator", "erase"), ("ingester", "search"),
                         ("investigator", "manage_users"), ("auditor", "optout")]:  # fmt: skip
        with pytest.raises(PermissionDenied) as err:
            require(users[role], action)
        assert err.value.code == "forbidden" and action in err.value.message
    assert not users["auditor"].can("search") and users["admin"].can("erase")
    add_user(catalog, "u-admin-2", "admin")  # the last active admin cannot be revoked (issue 12 §7)
    revoked = revoke_user(catalog, "u-admin")
    with pytest.raises(PermissionDenied):
        require(revoked, "search")
    with pytest.raises(PermissionDenied):
        require(None, "search")
    with pytest.raises(ValueError, match="unknown action"):
        require(users["admin"], "launch_missiles")


def test_purpose_validation_and_collection_requirements(catalog: Catalog) -> None:
    catalog.collection_id("open")
    catalog.collection_id("sensitive")
    plain = SearchPurpose("CASE-1", "  find the witness of the 3 May robbery  ")
    assert check_purpose(catalog, plain, "open").purpose == "find the witness of the 3 May robbery"
    for bad, code in [
        (None, "purpose_required"),
        (SearchPurpose("", "a real purpose"), "purpose_required"),
        (SearchPurpose("CASE-1", "   "), "purpose_required"),
        (SearchPurpose("CASE-1", "ab"), "invalid_purpose"),
        (SearchPurpose("C" * 101, "a real purpose"), "invalid_purpose"),
        (SearchPurpose("CASE-1", "x" * 1001), "invalid_purpose"),
        (SearchPurpose("CASE\n1", "a real purpose"), "invalid_purpose"),
    ]:
        with pytest.raises(PurposeRequired) as err:
            check_purpose(catalog, bad, "open")
        assert err.value.code == code

    set_requirements(catalog, "sensitive", ["legal_basis"], actor="admin")
    with pytest.raises(PurposeRequired, match="requires a legal_basis") as err:
        check_purpose(catalog, plain, "sensitive")
    assert err.value.code == "purpose_required"
    with pytest.raises(PurposeRequired):  # the whole library includes the sensitive collection
        check_purpose(catalog, plain, None)
    assert check_purpose(catalog, plain, "open") is not None
    based = SearchPurpose("CASE-1", "identify suspect", legal_basis="court order 2024/17")
    assert check_purpose(catalog, based, None).legal_basis == "court order 2024/17"
    entry = AuditLog(catalog).entries(action="collection_require")[0]
    assert entry.details == {"collection": "sensitive", "require": ["legal_basis"]}

    with catalog.session() as s, s.begin():  # a typo in a policy must not switch it off
        s.query(CollectionRow).filter_by(name="open").one().settings = {"require": ["legal_bassis"]}
    with pytest.raises(PurposeRequired) as err:
        check_purpose(catalog, based, "open")
    assert err.value.code == "bad_settings"
    set_requirements(catalog, "sensitive", [])
    assert "require" not in catalog.collections()[1].settings


def test_a_key_that_matched_is_not_derived_again_and_rotation_and_revocation_still_refuse(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11 (suite speed; every API request): scrypt runs once per key and process, not on every request.
    The attack to resist: a rotated or revoked key, or a wrong one with a known key id, must still be refused."""
    import hashlib

    from facesearch.governance import users

    derived: list[bytes] = []
    real = hashlib.scrypt

    def counted(password: bytes, **kwargs: object) -> bytes:
        derived.append(password)
        return real(password, **kwargs)

    monkeypatch.setattr(users.hashlib, "scrypt", counted)
    _, key = add_user(catalog, "ana", "investigator")
    derived.clear()
    assert all(authenticate(catalog, key).name == "ana" for _ in range(5))
    assert len(derived) == 1  # derived once, then remembered
    wrong = key[:-1] + ("A" if key[-1] != "A" else "B")  # the same key id, another secret
    assert authenticate(catalog, wrong) is None and authenticate(catalog, wrong) is None
    assert len(derived) == 3  # a key that did not match is never remembered
    _, new_key = rotate_key(catalog, "ana")
    assert authenticate(catalog, key) is None and authenticate(catalog, new_key).name == "ana"
    revoke_user(catalog, "ana", actor="boss")
    assert authenticate(catalog, new_key) is None  # remembered as matching, refused as revoked
