"""A private MariaDB server for the import tests: own data dir, socket and port, 127.0.0.1 only.

Started as the test user with `mariadb-install-db` + `mariadbd` (no system service, no my.cnf), and
loaded with the TarsFramework schema and rows from ../shared/tars-db/ by the `mariadb` client, as
the Tars installer loads them.
"""

from __future__ import annotations

import ctypes
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
import pymysql.cursors
from shared_templates import SHARED_TEMPLATES

SHARED_DB = SHARED_TEMPLATES.parent / "tars-db"
START_TIMEOUT = 60.0   # seconds; a cold start on a busy 2-core machine takes a few
TOOLS = ("mariadb-install-db", "mariadbd", "mariadb")
PR_SET_PDEATHSIG = 1


def tools_missing() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None
            and not Path(f"/usr/sbin/{tool}").exists()]


def _tool(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class MariaDB:
    """A running server; `sql()` runs statements as root over the socket."""

    root: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def socket(self) -> Path:
        return self.root / "mysqld.sock"

    def connect(self, database: str | None = None) -> pymysql.connections.Connection[Any]:
        return pymysql.connect(unix_socket=str(self.socket), user="root", database=database,
                               charset="utf8mb4", autocommit=True,
                               cursorclass=pymysql.cursors.DictCursor)

    def sql(self, statement: str, args: Any = None, database: str = "db_tars",
            sql_mode: str | None = None) -> list[dict[str, Any]]:
        connection = self.connect(database)
        try:
            with connection.cursor() as cursor:
                if sql_mode is not None:
                    cursor.execute("set session sql_mode = %s", (sql_mode,))
                cursor.execute(statement, args)
                return list(cursor.fetchall())
        finally:
            connection.close()

    def load(self, path: Path, database: str = "db_tars") -> None:
        """Load an SQL file with the mariadb client, as `mysql db_tars < file` would."""
        with path.open("rb") as stream:
            subprocess.run([_tool("mariadb"), "--no-defaults", f"--socket={self.socket}",
                            "--user=root", database], stdin=stream, check=True,
                           capture_output=True)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies, even by SIGKILL or a
    timeout, so no mariadbd outlives its run (Linux prctl PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start(root: Path) -> MariaDB:
    """Install a data dir under `root` and start mariadbd on a free port of 127.0.0.1."""
    user = getpass.getuser()   # mariadbd wants --user even when that user is root
    data = root / "data"
    install = subprocess.run([_tool("mariadb-install-db"), "--no-defaults", f"--datadir={data}",
                              f"--user={user}", "--auth-root-authentication-method=normal",
                              "--skip-test-db"], capture_output=True, text=True, check=False)
    if install.returncode != 0:   # say why: its output is the only clue
        raise AssertionError(f"mariadb-install-db exited {install.returncode}\n--- stdout\n"
                             f"{install.stdout[-3000:]}--- stderr\n{install.stderr[-3000:]}")
    port = _free_port()
    log = (root / "mariadbd.log").open("wb")
    process = subprocess.Popen(
        [_tool("mariadbd"), "--no-defaults", f"--datadir={data}", f"--socket={root}/mysqld.sock",
         f"--port={port}", "--bind-address=127.0.0.1", f"--user={user}", "--skip-log-bin",
         f"--pid-file={root}/mariadbd.pid", "--skip-name-resolve",
         "--innodb-buffer-pool-size=32M", "--character-set-server=utf8mb4"],
        stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    server = MariaDB(root, port, process)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"mariadbd exited: {(root / 'mariadbd.log').read_text()[-2000:]}")
        try:
            server.sql("select 1", database=None)
            return server
        except pymysql.MySQLError:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError("mariadbd did not answer within "
                                   f"{START_TIMEOUT:.0f} s") from None
            time.sleep(0.2)


def load_tars(server: MariaDB, user: str, password: str) -> None:
    """db_tars with the framework's schema and rows, and a user that may only read it."""
    server.sql("create database db_tars default character set utf8", database=None)
    for name in ("db_tars.sql", "tars_servers.sql", "tars_node_init.sql"):
        server.load(SHARED_DB / name)
    server.sql(f"create user '{user}'@'127.0.0.1' identified by %s", (password,))
    server.sql(f"grant select on db_tars.* to '{user}'@'127.0.0.1'")


def in_ci() -> bool:
    return bool(os.environ.get("CI"))
