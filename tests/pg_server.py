"""A throwaway PostgreSQL server for the tests: initdb in a temp dir, a loopback port, a stop.

The Debian package `postgresql` brings the binaries (/usr/lib/postgresql/<version>/bin;
`make setup` installs it, its service never started). The cluster trusts every local
connection and its superuser is `avatarcast`; fsync is off (nothing here must survive a crash).
PostgreSQL refuses to run as root: as root, initdb and postgres run as the `postgres` system
user (created by the package), in a directory under /tmp it owns.

    server = PgServer.start()
    url = server.new_database()      # postgresql://avatarcast@127.0.0.1:PORT/t_...
    ...
    server.stop()

Importable from every test (`from pg_server import ...`), and the session-scoped fixture
`pg_server` (tests/conftest.py) shares one server among the tests of a run.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SUPERUSER = "avatarcast"
RUN_AS_WHEN_ROOT = "postgres"
START_TIMEOUT_S = 60.0


def find_bindir() -> Path | None:
    """The bin directory of the newest PostgreSQL installed, None when there is none."""
    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/postgres")]
    found = [p for p in found if (p / "initdb").exists()]

    def version(p: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in p.parent.name.split(".") if x.isdigit())

    return max(found, key=version) if found else None


def unavailable_reason() -> str | None:
    """Why PostgreSQL tests cannot run here (None: they can)."""
    if find_bindir() is None:
        return (
            "PostgreSQL is not installed (Debian package postgresql, which `make setup` "
            "installs; binaries in /usr/lib/postgresql/*/bin)"
        )
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (requirements.lock; `make setup`)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(RUN_AS_WHEN_ROOT)
        except KeyError:
            return f"running as root and there is no {RUN_AS_WHEN_ROOT!r} user to run PostgreSQL"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    def __init__(self, bindir: Path, root: Path, port: int, proc: subprocess.Popen[bytes]):
        self.bindir = bindir
        self.root = root
        self.port = port
        self.proc = proc
        self.log_path = root / "postgres.log"

    @classmethod
    def start(cls) -> PgServer:
        reason = unavailable_reason()
        if reason is not None:
            raise RuntimeError(reason)
        bindir = find_bindir()
        assert bindir is not None
        as_user: dict[str, Any] = {}
        root = Path(tempfile.mkdtemp(prefix="avatarcast-pg-", dir="/tmp"))
        if os.geteuid() == 0:
            pw = pwd.getpwnam(RUN_AS_WHEN_ROOT)
            os.chown(root, pw.pw_uid, pw.pw_gid)
            # Popen switches to that user itself: the same as `runuser -u postgres --`, and
            # signals reach postgres directly (no runuser in between).
            as_user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        data, sockets = root / "data", root / "sockets"
        try:
            for d in (data, sockets):
                subprocess.run(["mkdir", "-m", "700", str(d)], check=True, **as_user)
            subprocess.run(
                [
                    *(str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust"),
                    *("-E", "UTF8", "--locale=C", "--no-sync"),
                ],
                check=True,
                capture_output=True,
                **as_user,
            )
        except subprocess.CalledProcessError as exc:
            shutil.rmtree(root, ignore_errors=True)
            out = (exc.stdout or b"") + (exc.stderr or b"")
            raise RuntimeError(f"initdb failed: {out.decode(errors='replace')}") from exc
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        last_error = ""
        for _ in range(5):  # a free port may be taken before postgres binds it: try another
            port = _free_port()
            log = open(root / "postgres.log", "ab")  # noqa: SIM115 - the child writes it
            proc = subprocess.Popen(
                [
                    *(str(bindir / "postgres"), "-D", str(data), "-h", "127.0.0.1"),
                    *("-p", str(port), "-k", str(sockets), "-F"),
                    *("-c", "shared_buffers=16MB", "-c", "max_connections=60"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                **as_user,
            )
            log.close()
            server = cls(bindir, root, port, proc)
            try:
                server._wait_ready()
                return server
            except RuntimeError as exc:
                last_error = str(exc)
                server._stop_process()
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {last_error}")

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited ({self.proc.returncode}): {self.log_tail()}")
            try:
                psycopg.connect(self.url("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postgres not ready: {self.log_tail()}") from None
                time.sleep(0.1)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def new_database(self) -> str:
        """A new, empty database; its URL."""
        import psycopg

        name = "t_" + secrets.token_hex(6)
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
        return self.url(name)

    def _stop_process(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown: clients are disconnected
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self) -> None:
        self._stop_process()
        shutil.rmtree(self.root, ignore_errors=True)

    def terminate_connections(self, dbname: str) -> int:
        """Cut every client connection to `dbname` (as a server restart would); how many."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (dbname,),
            ).fetchone()
        return int(row[0]) if row else 0


@contextlib.contextmanager
def running() -> Iterator[PgServer]:
    server = PgServer.start()
    try:
        yield server
    finally:
        server.stop()
