"""Dependencies shared by the routers: the objects a server keeps in ``app.state``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from facesearch.api.jobs import JobRunner
from facesearch.api.state import ApiSettings, LibraryHost
from facesearch.api.uploads import UploadStore


def _host(request: Request) -> LibraryHost:
    return request.app.state.host


def _settings(request: Request) -> ApiSettings:
    return request.app.state.settings


def _uploads(request: Request) -> UploadStore:
    return request.app.state.uploads


def _jobs(request: Request) -> JobRunner:
    return request.app.state.jobs


Host = Annotated[LibraryHost, Depends(_host)]
Settings = Annotated[ApiSettings, Depends(_settings)]
Uploads = Annotated[UploadStore, Depends(_uploads)]
Jobs = Annotated[JobRunner, Depends(_jobs)]
