"""Governance: who may do what, what was done, and how people get out of the library.

- :mod:`~facesearch.governance.users`: users, roles, API keys (hashed), ``require(user, action)``.
- :mod:`~facesearch.governance.audit`: the append-only, hash-chained audit log, its check and export.
- :mod:`~facesearch.governance.purpose`: the case and purpose every search states; per-collection demands.
- :mod:`~facesearch.governance.optout`: opt-outs that remove a person's faces and keep them out.
- :mod:`~facesearch.governance.erasure`: erasure on request, with a receipt.
- :mod:`~facesearch.governance.retention`: per-collection retention periods and their purge.

All tables live in the library's catalog database (see :mod:`~facesearch.store.governance_schema`), created
by the catalog's migrations when it opens, so libraries made before this layer get them too
(:func:`ensure_governance_tables` remains for callers and is a no-op on an opened catalog).
"""

from __future__ import annotations

from facesearch.governance.audit import AuditEntry, AuditLog, AuditVerification, verify_jsonl
from facesearch.governance.db import default_actor, ensure_governance_tables
from facesearch.governance.erasure import ErasureReceipt, erase
from facesearch.governance.errors import AuditError, GovernanceError, PermissionDenied, PurposeRequired, UserError
from facesearch.governance.optout import OptOut, OptOutPreview, OptOutReceipt, OptOutRegistry
from facesearch.governance.purpose import SearchPurpose, check_purpose, set_requirements
from facesearch.governance.retention import RetentionReceipt, purge_expired, set_retention
from facesearch.governance.users import (
    ACTIONS,
    ROLE_PERMISSIONS,
    ROLES,
    User,
    add_user,
    authenticate,
    list_users,
    require,
    revoke_user,
    rotate_key,
    set_role,
)

__all__ = [
    "ACTIONS",
    "ROLES",
    "ROLE_PERMISSIONS",
    "AuditEntry",
    "AuditError",
    "AuditLog",
    "AuditVerification",
    "ErasureReceipt",
    "GovernanceError",
    "OptOut",
    "OptOutPreview",
    "OptOutReceipt",
    "OptOutRegistry",
    "PermissionDenied",
    "PurposeRequired",
    "RetentionReceipt",
    "SearchPurpose",
    "User",
    "UserError",
    "add_user",
    "authenticate",
    "check_purpose",
    "default_actor",
    "ensure_governance_tables",
    "erase",
    "list_users",
    "purge_expired",
    "require",
    "revoke_user",
    "rotate_key",
    "set_requirements",
    "set_role",
    "set_retention",
    "verify_jsonl",
]
