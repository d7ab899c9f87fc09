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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_with_a_key_and_refuses_without(tmp_path: Path) -> None:
    folder = tmp_path / "lib"
    Library.open(folder, jitter=0).close()
    cli = [sys.executable, "-m", "facesearch.cli"]
    added = subprocess.run(
        [*cli, "users", "add", "ana", "--role", "auditor", "--json", "-l", str(folder)],
        capture_output=True,
        text=True,
        check=True,
    )
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
        # Until it answers (a slow machine takes long to import and load): a state, not a guessed delay.
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{base}/v1/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None:
                raise AssertionError(f"server exited: {server.communicate(timeout=20)[0]}")
            if time.monotonic() > deadline:
                raise AssertionError("server did not answer in 300 s")
            time.sleep(0.2)
        assert httpx.get(f"{base}/v1/audit/verify").status_code == 401
        ok = httpx.get(f"{base}/v1/audit/verify", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200 and ok.json()["ok"] is True
        forbidden = httpx.get(f"{base}/v1/users", headers={"Authorization": f"Bearer {key}"})
        assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
        assert "/v1/search" in httpx.get(f"{base}/openapi.json").text
    finally:
        server.terminate()
        server.wait(timeout=20)
    missing = subprocess.run([*cli, "serve", "-l", str(tmp_path / "none")], capture_output=True, text=True)
    assert missing.returncode == 2 and "no facesearch library" in " ".join(missing.stderr.split())
