"""A private PostgreSQL server for the test run: initdb in a temporary folder, pg_ctl start, stop.

It listens on 127.0.0.1 on a free port with its socket in its own folder, so it never meets a
server the machine may already run. Connections over TCP need a password, which the tests give to
libpq the documented way (a passfile named by ``$PGPASSFILE``): catalog URLs never hold one.
PostgreSQL refuses to run as root; as root (CI) initdb and pg_ctl run as the ``postgres`` user
through ``runuser``, in a folder that user owns. Fast and unsafe settings (fsync off): test data only.
"""

from __future__ import annotations

import glob
import logging
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

SUPERUSER = "facesearch"
INSTALL = "apt-get install -y postgresql  (or: make postgres)"


def find_bindir() -> Path | None:
    """Debian's /usr/lib/postgresql/<version>/bin (newest), else wherever initdb is on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresCluster:
    """One throwaway cluster; :meth:`create_database` hands out a fresh database URL per test."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.folder = Path(tempfile.mkdtemp(prefix="facesearch-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self.passfile = self.folder / "client" / "pgpass"
        self._as_postgres = os.geteuid() == 0
        self._count = 0

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, cwd=self.folder, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        server_pw = self.folder / "pw"
        server_pw.write_text(self.password + "\n")
        if self._as_postgres:
            import pwd

            entry = pwd.getpwnam("postgres")
            for path in (self.folder, server_pw):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, "--pwfile", str(server_pw), "-E", "UTF8",
            "--locale=C", "--no-sync", "--auth-local=trust", "--auth-host=scram-sha-256",
        )  # fmt: skip
        server_pw.unlink()
        settings = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"), "-w", "-t", "60",
                  "-o", settings, "start")  # fmt: skip
        # The client side (this process, root or not): a passfile only its owner can read, as libpq demands.
        self.passfile.parent.mkdir(mode=0o700)
        self.passfile.write_text(f"127.0.0.1:{self.port}:*:{SUPERUSER}:{self.password}\n")
        self.passfile.chmod(0o600)
        log.info("PostgreSQL test cluster on 127.0.0.1:%d in %s", self.port, self.folder)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "test") -> str:
        """A new, empty database; returns its URL (no password: the passfile supplies it)."""
        import psycopg

        self._count += 1
        name = f"{prefix}_{self._count}_{secrets.token_hex(3)}"
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, password=self.password, dbname="postgres", autocommit=True
        ) as conn:
            # FILE_COPY (PostgreSQL 15+): a plain copy of template1, quicker than WAL-logging it.
            strategy = " STRATEGY FILE_COPY" if conn.info.server_version >= 150000 else ""
            conn.execute(f'CREATE DATABASE "{name}"{strategy}')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
