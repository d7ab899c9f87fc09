"""Shared fixtures. Real photos come from ../shared/data (override with FACESEARCH_DATA).

The photos are never copied into the project. When the folder is missing the tests fail loudly
in CI (CI=true) and are skipped with a clear message elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VECTOR_STORES = ["faiss", "milvus"]


def data_dir() -> Path:
    return Path(os.environ.get("FACESEARCH_DATA", ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = data_dir()
    if not (path / "face_recognition_examples").is_dir():
        message = f"real face photos not found at {path} (set FACESEARCH_DATA)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module", params=VECTOR_STORES)
def vector_store(request: pytest.FixtureRequest) -> str:
    """Each vector store engine in turn: tests that search, remove or filter run on every one."""
    return request.param
