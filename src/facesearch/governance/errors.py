"""Errors of the governance layer. Each has a stable ``code`` the REST API can map to a status."""

from __future__ import annotations

from facesearch.errors import FaceSearchError


class GovernanceError(FaceSearchError):
    """Base class for governance errors (users, audit, purpose, opt-out, erasure, retention)."""

    code = "governance_error"


class PermissionDenied(GovernanceError):
    """The user's role does not allow the action (HTTP 403)."""

    code = "forbidden"


class UserError(GovernanceError):
    """A user cannot be created or found: ``unknown_role``, ``bad_name``, ``user_exists``, ``no_user``."""

    code = "user_error"


class PurposeRequired(GovernanceError):
    """A search lacks the case id, purpose or legal basis its collection requires, or they are malformed."""

    code = "purpose_required"


class AuditError(GovernanceError):
    """The audit log cannot be appended to (for instance its head row was deleted): investigate with verify()."""

    code = "audit_error"
