"""Collections: list them (any key), create, configure and erase them (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from facesearch.api import service
from facesearch.api.auth import permission
from facesearch.api.deps import Host
from facesearch.api.models import (
    ERROR_RESPONSES,
    NAME_PATTERN,
    CollectionIn,
    CollectionList,
    CollectionOut,
    CollectionSettingsIn,
    ErasureReceiptOut,
)
from facesearch.governance import User

router = APIRouter(tags=["collections"], responses=ERROR_RESPONSES)

CollectionName = Annotated[str, Path(min_length=1, max_length=200, pattern=NAME_PATTERN)]
Reason = Annotated[str, Query(min_length=1, max_length=1000, description="why (kept in the audit log)")]


def _listing(host: Host) -> CollectionList:
    with host.reading() as library:
        return CollectionList.model_validate(service.collections(library))


@router.get("/collections", response_model=CollectionList, summary="Collections with their counts and settings")
def list_collections(host: Host, user: Annotated[User, permission(None)]) -> CollectionList:
    """Every role may list collections: an investigator needs their names to scope a search."""
    return _listing(host)


@router.post(
    "/collections",
    response_model=CollectionOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create a collection with its search requirements and retention",
)
def create_collection(
    body: CollectionIn, host: Host, user: Annotated[User, permission("manage_collections")]
) -> CollectionOut:
    service.create_collection(
        host.catalog, body.name, require=list(body.require), retention_days=body.retention_days, actor=user
    )
    return _one(host, body.name)


@router.put(
    "/collections/{name}", response_model=CollectionOut, summary="Set a collection's requirements and retention"
)
def configure_collection(
    name: CollectionName,
    body: CollectionSettingsIn,
    host: Host,
    user: Annotated[User, permission("manage_collections")],
) -> CollectionOut:
    """Replaces both settings: ``require`` (e.g. ``["legal_basis"]``) and ``retention_days`` (null: keep)."""
    service.configure_collection(
        host.catalog, name, require=list(body.require), retention_days=body.retention_days, actor=user
    )
    return _one(host, name)


@router.delete("/collections/{name}", response_model=ErasureReceiptOut, summary="Erase a collection and its photos")
def erase_collection(
    name: CollectionName,
    reason: Reason,
    host: Host,
    user: Annotated[User, permission("manage_collections")],
) -> ErasureReceiptOut:
    """Every photo, face, embedding and thumbnail in it goes, and the collection itself; returns the receipt."""
    with host.writing() as library:
        receipt = service.erase_items(library, actor=user, reason=reason, collection=name)
    return ErasureReceiptOut.model_validate(receipt.to_dict())


def _one(host: Host, name: str) -> CollectionOut:
    for item in _listing(host).collections:
        if item.name == name:
            return item
    return CollectionOut(name=name, images=0, faces=0, settings={})
