"""Every REST route × {no key, a role without the route's action, a role with it}.

The table below holds one minimal valid request per route; ``test_every_route_is_in_the_table``
compares it with the app's routes, so a route added without an entry here fails the suite. The
action each route checks is read from the route itself (``action_of``), and the roles from
governance's ROLE_PERMISSIONS: the test follows the policy rather than restating it.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from PIL import Image

from facesearch import Library
from facesearch.api import create_app
from facesearch.api.auth import ACTION_KEY, PUBLIC_PATHS, action_of, api_routes
from facesearch.governance import ROLE_PERMISSIONS, ROLES, add_user

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note that it prefers httpx2 to httpx
    from fastapi.testclient import TestClient


def tiny_png() -> bytes:
    """A small synthetic image with no face in it (valid input that the pipeline answers with no_face)."""
    out = io.BytesIO()
    Image.new("RGB", (48, 48), (120, 130, 140)).save(out, format="PNG")
    return out.getvalue()


PNG = tiny_png()
CASE = {"case_id": "case-1", "purpose": "access control test"}
NO_JOB = "0" * 32

# (method, path template) -> (concrete path, request keyword arguments for TestClient.request)
REQUESTS: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {
    ("GET", "/v1/health"): ("/v1/health", {}),
    ("GET", "/v1/me"): ("/v1/me", {}),
    ("GET", "/v1/users"): ("/v1/users", {}),
    ("POST", "/v1/users"): ("/v1/users", {"json": {"name": "table-user", "role": "auditor"}}),
    ("DELETE", "/v1/users/{name}"): ("/v1/users/nobody", {}),
    ("POST", "/v1/users/{name}/key"): ("/v1/users/nobody/key", {}),
    ("PUT", "/v1/users/{name}/role"): ("/v1/users/nobody/role", {"json": {"role": "auditor"}}),
    ("GET", "/v1/collections"): ("/v1/collections", {}),
    ("POST", "/v1/collections"): ("/v1/collections", {"json": {"name": "table"}}),
    ("PUT", "/v1/collections/{name}"): ("/v1/collections/none", {"json": {"require": ["legal_basis"]}}),
    ("DELETE", "/v1/collections/{name}"): ("/v1/collections/none", {"params": {"reason": "test"}}),
    ("POST", "/v1/ingest/uploads"): (
        "/v1/ingest/uploads",
        {"files": [("files", ("a.png", PNG, "image/png"))], "data": {"collection": "table"}},
    ),
    ("POST", "/v1/ingest/manifest"): (
        "/v1/ingest/manifest",
        {"files": {"manifest": ("m.jsonl", b'{"url": "http://127.0.0.1/x.jpg"}\n')}, "data": {"collection": "table"}},
    ),
    ("GET", "/v1/jobs"): ("/v1/jobs", {}),
    ("GET", "/v1/jobs/{job_id}"): (f"/v1/jobs/{NO_JOB}", {}),
    ("POST", "/v1/search"): ("/v1/search", {"files": {"probe": ("p.png", PNG)}, "data": CASE}),
    ("POST", "/v1/verify"): ("/v1/verify", {"files": {"a": ("a.png", PNG), "b": ("b.png", PNG)}, "data": CASE}),
    ("GET", "/v1/faces/{face_id}"): (
        "/v1/faces/999",
        {"params": {"case_id": "case-1", "purpose": "review the candidates"}},
    ),
    ("GET", "/v1/faces/{face_id}/thumbnail"): (
        "/v1/faces/999/thumbnail",
        {"params": {"case_id": "case-1", "purpose": "review the candidates"}},
    ),
    ("GET", "/v1/faces/{face_id}/photo"): (
        "/v1/faces/999/photo",
        {"params": {"case_id": "case-1", "purpose": "review the candidates"}},
    ),
    ("POST", "/v1/reviews"): (
        "/v1/reviews",
        {"json": {"case_id": "case-1", "face_id": 999, "decision": "rejected"}},
    ),
    ("GET", "/v1/reviews"): ("/v1/reviews", {"params": {"case_id": "case-1", "purpose": "review the candidates"}}),
    ("POST", "/v1/cases"): ("/v1/cases", {"json": {"case_id": "table-case", "purpose": "access control test"}}),
    ("GET", "/v1/cases"): ("/v1/cases", {}),
    ("GET", "/v1/cases/{case_id}"): ("/v1/cases/none-such", {}),
    ("POST", "/v1/cases/{case_id}/close"): ("/v1/cases/none-such/close", {}),
    ("GET", "/v1/cases/{case_id}/decisions"): ("/v1/cases/none-such/decisions", {}),
    ("POST", "/v1/cases/{case_id}/decisions"): (
        "/v1/cases/none-such/decisions",
        {"json": {"face_id": 999, "decision": "rejected"}},
    ),
    ("GET", "/v1/cases/{case_id}/second-reviews"): ("/v1/cases/none-such/second-reviews", {}),
    ("GET", "/v1/cases/{case_id}/report"): ("/v1/cases/none-such/report", {}),
    ("GET", "/v1/cases/{case_id}/searches/{search_seq}/probe/{face}"): ("/v1/cases/none-such/searches/1/probe/0", {}),
    ("POST", "/v1/cases/verify-report"): ("/v1/cases/verify-report", {"files": {"file": ("r.html", b"<p>")}}),
    ("POST", "/v1/cases/{case_id}/second-reviews/{task_id}"): (
        "/v1/cases/none-such/second-reviews/1",
        {"json": {"decision": "rejected"}},
    ),
    ("POST", "/v1/cases/{case_id}/watches"): (
        "/v1/cases/none-such/watches",
        {"files": {"photo": ("p.png", PNG)}, "data": {"expires": "2099-01-01"}},
    ),
    ("GET", "/v1/cases/{case_id}/watches"): ("/v1/cases/none-such/watches", {}),
    ("DELETE", "/v1/watches/{watch_id}"): ("/v1/watches/999", {}),
    ("GET", "/v1/alerts"): ("/v1/alerts", {}),
    ("POST", "/v1/alerts/seen"): ("/v1/alerts/seen", {"json": {"up_to": 1}}),
    ("GET", "/v1/people"): ("/v1/people", {"params": CASE}),
    ("POST", "/v1/people/cluster"): ("/v1/people/cluster", {"json": CASE}),
    ("GET", "/v1/people/export"): ("/v1/people/export", {"params": CASE}),
    ("POST", "/v1/people/not-this-person"): ("/v1/people/not-this-person", {"json": {**CASE, "face_id": 999}}),
    ("PUT", "/v1/people/collections/{name}"): ("/v1/people/collections/none", {"json": {"enabled": False}}),
    ("GET", "/v1/people/{person_id}"): ("/v1/people/999", {"params": CASE}),
    ("GET", "/v1/people/{person_id}/thumbnail"): ("/v1/people/999/thumbnail", {"params": CASE}),
    ("POST", "/v1/people/{person_id}/name"): ("/v1/people/999/name", {"json": {**CASE, "name": "A"}}),
    ("POST", "/v1/people/{person_id}/hide"): ("/v1/people/999/hide", {"json": CASE}),
    ("POST", "/v1/people/{person_id}/merge"): ("/v1/people/999/merge", {"json": {**CASE, "other": 998}}),
    ("POST", "/v1/people/{person_id}/split"): ("/v1/people/999/split", {"json": {**CASE, "face_ids": [1]}}),
    ("POST", "/v1/erasures"): ("/v1/erasures", {"json": {"face_ids": [999], "reason": "table test"}}),
    ("DELETE", "/v1/images/{image_id}"): ("/v1/images/999", {}),
    ("GET", "/v1/optouts"): ("/v1/optouts", {}),
    ("POST", "/v1/optouts"): ("/v1/optouts", {"files": {"photo": ("p.png", PNG)}}),
    ("POST", "/v1/optouts/preview"): ("/v1/optouts/preview", {"files": {"photo": ("p.png", PNG)}}),
    ("DELETE", "/v1/optouts/{optout_id}"): ("/v1/optouts/999", {}),
    ("GET", "/v1/audit"): ("/v1/audit", {"params": {"limit": 5}}),
    ("GET", "/v1/audit/verify"): ("/v1/audit/verify", {}),
    ("GET", "/v1/audit/export"): ("/v1/audit/export", {}),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """An empty library with one user per role; rate limiting off (this test makes ~90 requests)."""
    folder = tmp_path_factory.mktemp("api-auth") / "lib"
    keys: dict[str, str] = {}
    with Library.open(folder, jitter=0) as lib:
        for role in ROLES:
            _, keys[role] = add_user(lib.catalog, f"{role}-1", role)
    with TestClient(create_app(folder, rate_limit_per_minute=0, ingest_workers=1)) as client:
        yield client, keys


def routes_of(client: TestClient) -> dict[tuple[str, str], APIRoute]:
    return {(method, path): route for method, path, route in api_routes(client.app) if path.startswith("/v1/")}


def test_every_route_is_in_the_table(server: tuple[TestClient, dict[str, str]]) -> None:
    routes = routes_of(server[0])
    assert set(routes) - set(REQUESTS) == set(), "add the new routes to REQUESTS in tests/test_api_auth.py"
    assert set(REQUESTS) - set(routes) == set(), "REQUESTS names routes the app no longer has"


def test_the_openapi_document_names_each_routes_action(server: tuple[TestClient, dict[str, str]]) -> None:
    client = server[0]
    document = client.get("/openapi.json").json()
    for (method, path), route in routes_of(client).items():
        operation = document["paths"][path][method.lower()]
        if path in PUBLIC_PATHS:
            assert ACTION_KEY not in operation
        else:
            assert operation[ACTION_KEY] == (action_of(route) or "any")


def call(client: TestClient, key: str | None, method: str, template: str, header: str = "bearer") -> Any:
    path, kwargs = REQUESTS[(method, template)]
    headers = {}
    if key is not None:
        headers = {"Authorization": f"Bearer {key}"} if header == "bearer" else {"X-API-Key": key}
    return client.request(method, path, headers=headers, **kwargs)


@pytest.mark.parametrize(("method", "template"), sorted(REQUESTS))
def test_without_a_key_every_route_but_health_is_401(
    server: tuple[TestClient, dict[str, str]], method: str, template: str
) -> None:
    client, _ = server
    response = call(client, None, method, template)
    if template in PUBLIC_PATHS:
        assert response.status_code == 200 and response.json() == {"status": "ok"}
        return
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    wrong = call(client, "fs_0123456789ab_not-a-real-key", method, template)
    assert wrong.status_code == 401


@pytest.mark.parametrize(("method", "template"), sorted(REQUESTS))
def test_roles(server: tuple[TestClient, dict[str, str]], method: str, template: str) -> None:
    """A role without the route's action gets 403; one with it gets past the check (any other status)."""
    client, keys = server
    if template in PUBLIC_PATHS:
        return
    action = action_of(routes_of(client)[(method, template)])
    allowed = set(ROLES) if action is None else set(ROLE_PERMISSIONS[action])
    for role in sorted(set(ROLES) - allowed):
        response = call(client, keys[role], method, template)
        assert response.status_code == 403, (role, response.text)
        assert response.json()["error"]["code"] == "forbidden"
    for number, role in enumerate(sorted(allowed)):
        response = call(client, keys[role], method, template, header="bearer" if number % 2 else "x-api-key")
        assert response.status_code not in (401, 403), (role, response.text)
        assert response.status_code < 500, (role, response.text)
        if response.status_code >= 400:
            assert set(response.json()["error"]) == {"code", "message"}


def test_a_revoked_key_is_refused_at_once(server: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = server
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    created = client.post("/v1/users", headers=admin, json={"name": "short-lived", "role": "investigator"})
    assert created.status_code == 201
    key = created.json()["key"]
    assert client.get("/v1/me", headers={"X-API-Key": key}).json()["name"] == "short-lived"
    assert client.delete("/v1/users/short-lived", headers=admin).json()["active"] is False
    assert client.get("/v1/me", headers={"X-API-Key": key}).status_code == 401
    listed = json.dumps(client.get("/v1/users", headers=admin).json())
    assert key not in listed and "key_hash" not in listed
