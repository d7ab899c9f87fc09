"""Users and their API keys (admin), and ``/me`` for any key. A new key is returned once, never again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from facesearch.api import service
from facesearch.api.auth import permission
from facesearch.api.deps import Host
from facesearch.api.models import ERROR_RESPONSES, MeOut, NewKeyOut, RoleIn, UserIn, UserList, UserOut
from facesearch.governance import User

router = APIRouter(tags=["users"], responses=ERROR_RESPONSES)

UserName = Annotated[str, Path(min_length=1, max_length=100)]


def _out(user: User) -> UserOut:
    return UserOut.model_validate({**user.to_dict(), "active": user.active})


@router.get("/me", response_model=MeOut, summary="Who this key belongs to and what it may do")
def me(user: Annotated[User, permission(None)]) -> MeOut:
    return MeOut(name=user.name, role=user.role, actions=service.allowed_actions(user))


@router.get("/users", response_model=UserList, summary="List users (never their keys)")
def list_users(host: Host, user: Annotated[User, permission("manage_users")]) -> UserList:
    return UserList(users=[_out(u) for u in service.users(host.catalog)])


@router.post(
    "/users", response_model=NewKeyOut, status_code=status.HTTP_201_CREATED, summary="Add a user with a new key"
)
def add_user(body: UserIn, host: Host, user: Annotated[User, permission("manage_users")]) -> NewKeyOut:
    """The key is in this response only: it is stored as a hash and cannot be shown again (rotate it instead)."""
    created, key = service.create_user(host.catalog, body.name, body.role, actor=user)
    return NewKeyOut(user=_out(created), key=key)


@router.delete("/users/{name}", response_model=UserOut, summary="Revoke a user's key for good")
def revoke_user(name: UserName, host: Host, user: Annotated[User, permission("manage_users")]) -> UserOut:
    return _out(service.revoke(host.catalog, name, actor=user))


@router.put("/users/{name}/role", response_model=UserOut, summary="Give a user another role (audited)")
def change_role(name: UserName, body: RoleIn, host: Host, user: Annotated[User, permission("manage_users")]) -> UserOut:
    """The last active admin cannot be demoted (409 ``last_admin``), whichever interface asks (governance/users.py)."""
    return _out(service.change_role(host.catalog, name, body.role, actor=user))


@router.post("/users/{name}/key", response_model=NewKeyOut, summary="Give a user a new key (the old one stops)")
def rotate_key(name: UserName, host: Host, user: Annotated[User, permission("manage_users")]) -> NewKeyOut:
    updated, key = service.new_key(host.catalog, name, actor=user)
    return NewKeyOut(user=_out(updated), key=key)
