"""`facesearch serve` as a real process on loopback: health without a key, everything else with one."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from facesearch import Library
from tests.helpers import cli_ok, run_cli


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_with_a_key_and_refuses_without(tmp_path: Path) -> None:
    folder = tmp_path / "lib"
    Library.open(folder, jitter=0).close()
    cli = [sys.executable, "-m", "facesearch.cli"]
    added = cli_ok("users", "add", "ana", "--role", "auditor", "--json", "-l", str(folder))  # in-process
    key = json.loads(added.stdout)["api_key"]
    port = free_port()
    server = subprocess.Popen(
        [*cli, "serve", "--port", str(port), "-l", str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(400):  # polling until the server answers
            try:
                if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise AssertionError("server did not start")
        assert httpx.get(f"{base}/v1/audit/verify").status_code == 401
        ok = httpx.get(f"{base}/v1/audit/verify", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200 and ok.json()["ok"] is True
        forbidden = httpx.get(f"{base}/v1/users", headers={"Authorization": f"Bearer {key}"})
        assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
        assert "/v1/search" in httpx.get(f"{base}/openapi.json").text
    finally:
        server.terminate()
        server.wait(timeout=20)
    missing = run_cli("serve", "-l", str(tmp_path / "none"))
    assert missing.exit_code == 2 and "no facesearch library" in " ".join(missing.stderr.split())
