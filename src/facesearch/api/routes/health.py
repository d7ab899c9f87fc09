"""``GET /v1/health``: the one route that answers without a key, and so says nothing but "ok"."""

from __future__ import annotations

from fastapi import APIRouter

from facesearch.api.models import HealthOut

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut, summary="Is the server up?")
def health() -> HealthOut:
    """For load balancers and monitoring: no key needed, no library details revealed."""
    return HealthOut(status="ok")
