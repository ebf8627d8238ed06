"""The Tars registry database (`db_tars`): the rows `tarsdock import` needs, read with PyMySQL.

The only module that talks to MySQL. It returns plain rows (column -> value, NULL as None), sorted
by id; what they mean is decided in importer.py. The queries follow what tarsregistry itself reads:
CDbHandle::getServers (t_server_conf left join t_adapter_conf by application, server_name and
node_name), CDbHandle::getProfileTemplate (t_profile_template by name, then its parents_name) and
CDbHandle::loadDockerInfo (t_docker_registry, t_base_image); TarsFramework
RegistryServer/DbHandle.cpp.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from tarsdock import textfile
from tarsdock.errors import EnvironmentFault, TarsdockError

Row = dict[str, Any]
# MySQL client errors of a server that cannot be reached or went away (CR_CONNECTION_ERROR,
# CR_CONN_HOST_ERROR, CR_SERVER_GONE_ERROR, CR_SERVER_LOST): PyMySQL raises them as MySQL does
UNREACHABLE = frozenset({2002, 2003, 2006, 2013})
DEFAULT_PORT = 3306
CONNECT_TIMEOUT = 10   # seconds
# tarsnode's locator points at the registry's QueryObj (tars_servers.sql: tarsregistry adapters)
LOCATOR_SERVANT = "tars.tarsregistry.QueryObj"


class DatabaseError(TarsdockError):
    """The database cannot be reached or read."""


@dataclass(frozen=True)
class DbUrl:
    """`mysql://USER@HOST[:PORT]/DB`; the password never comes from the URL."""

    user: str
    host: str
    port: int
    database: str

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host   # IPv6, as it was given
        return f"mysql://{self.user}@{host}:{self.port}/{self.database}"


@dataclass(frozen=True)
class TarsRows:
    """Everything `import` reads for one node, as rows sorted by id."""

    node: str
    servers: list[Row] = field(default_factory=list)      # t_server_conf of the node
    adapters: list[Row] = field(default_factory=list)     # t_adapter_conf of the node
    node_info: list[Row] = field(default_factory=list)    # t_node_info of the node (0 or 1)
    templates: list[Row] = field(default_factory=list)    # all of t_profile_template
    images: list[Row] = field(default_factory=list)       # all of t_base_image
    registries: list[Row] = field(default_factory=list)   # all of t_docker_registry
    locators: list[Row] = field(default_factory=list)     # the registry's QueryObj adapters
    nodes: list[Row] = field(default_factory=list)        # every node_name, for "did you mean"


def parse_url(text: str) -> DbUrl:
    """Parse `mysql://USER@HOST[:PORT]/DB`; raise DatabaseError for anything else."""
    parts = urlsplit(text)
    if parts.scheme not in ("mysql", "mariadb"):
        raise DatabaseError(f"--tars-db {text!r}: expected mysql://USER@HOST[:PORT]/db_tars")
    if parts.password is not None:
        raise DatabaseError("--tars-db: put the password in --password-file, not in the URL "
                            "(a command line is visible to every user of the host)")
    database = parts.path.lstrip("/")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise DatabaseError(f"--tars-db {text!r}: the port is not a number") from None
    if not parts.username or not parts.hostname or not database or "/" in database \
            or parts.query or parts.fragment:
        raise DatabaseError(f"--tars-db {text!r}: expected mysql://USER@HOST[:PORT]/db_tars")
    return DbUrl(unquote(parts.username), parts.hostname, port, database)


def read_password(path: Path | None) -> str | None:
    """The password from its file (one line; the line break is not part of it), or None.

    Raises DatabaseError for a file that cannot be read, and for one whose bytes the server would
    get as part of the password (a byte-order mark, a byte that is not UTF-8, a second line), with
    the rules of a registry's password_file. An empty file is no password.
    """
    if path is None:
        return None
    try:
        if path.stat().st_mode & 0o077:
            print(f"warning: --password-file {path} is readable by others; chmod 600 it",
                  file=sys.stderr)
        raw = path.read_bytes()
    except OSError as error:
        raise DatabaseError(f"--password-file {path}: cannot read it ({error.strerror})") from None
    if not raw.strip(b"\r\n"):
        return ""
    try:
        return textfile.password(raw, "the database server")
    except ValueError as problem:
        raise DatabaseError(f"--password-file {path} {problem}") from None


# The columns import reads (tarsregistry's getServers reads these and a few state columns);
# naming them keeps the rows small: PyMySQL decodes every column of every row in Python.
SERVER_COLUMNS = ("id, application, server_name, node_name, server_type, template_name, profile, "
                  "exe_path, run_type, base_image_id, setting_state, enable_set, set_name, "
                  "set_area, set_group, async_thread_num, base_path, start_script_path, "
                  "stop_script_path, monitor_script_path, config_center_port")
ADAPTER_COLUMNS = ("id, application, server_name, node_name, adapter_name, endpoint, servant, "
                   "thread_num, max_connections, queuecap, queuetimeout, protocol, allow_ip, "
                   "handlegroup")
QUERIES: dict[str, str] = {
    "servers": f"select {SERVER_COLUMNS} from t_server_conf where node_name = %s order by id",
    "adapters": f"select {ADAPTER_COLUMNS} from t_adapter_conf where node_name = %s order by id",
    "node_info": "select id, node_name, endpoint_ip, data_dir from t_node_info "
                 "where node_name = %s order by id",
    "templates": "select id, template_name, parents_name, profile from t_profile_template "
                 "order by id",
    "images": "select id, image, registryId from t_base_image order by id",
    "registries": "select id, registry, username, password from t_docker_registry order by id",
    "locators": "select id, servant, endpoint from t_adapter_conf where servant = %s order by id",
    "nodes": "select node_name from t_node_info order by node_name",
}
PARAMS: dict[str, str] = {"locators": LOCATOR_SERVANT}

Query = Callable[[str, tuple[Any, ...]], list[Row]]


def fetch(query: Query, node: str) -> TarsRows:
    """Read every table through `query(sql, args)` (injected: tests pass fakes)."""
    found: dict[str, list[Row]] = {}
    for name, sql in QUERIES.items():
        args = (PARAMS.get(name, node),) if "%s" in sql else ()
        found[name] = query(sql, args)
    return TarsRows(node, **found)


def read_tars_db(url: DbUrl, password: str | None, node: str) -> TarsRows:
    """Connect with PyMySQL, read the node's rows in one transaction, close."""
    import pymysql
    import pymysql.cursors

    try:
        connection = pymysql.connect(
            # bytes: PyMySQL would encode a str as Latin-1 (a traceback for '€'); the mariadb
            # and mysql clients send the UTF-8 bytes, which `identified by` hashed
            host=url.host, port=url.port, user=url.user, password=(password or "").encode(),
            database=url.database, charset="utf8mb4", connect_timeout=CONNECT_TIMEOUT,
            cursorclass=pymysql.cursors.DictCursor)
    except pymysql.MySQLError as error:
        raise db_failure(url, error, f"cannot connect to {url}") from None
    try:
        with connection.cursor() as cursor:
            # one consistent snapshot: TarsWeb may be writing while we read
            cursor.execute("start transaction with consistent snapshot, read only")

            def query(sql: str, args: tuple[Any, ...]) -> list[Row]:
                cursor.execute(sql, args)
                return list(cursor.fetchall())

            rows = fetch(query, node)
            cursor.execute("commit")
            return rows
    except pymysql.MySQLError as error:
        raise db_failure(url, error, f"reading {url}") from None
    finally:
        connection.close()


def db_failure(url: DbUrl, error: Exception, doing: str) -> TarsdockError:
    """A server that does not answer is the environment's fault (exit 5, as a supervisord that
    does not answer); anything it answers (access denied, no such database) is the input's."""
    code = error.args[0] if error.args else None
    if code in UNREACHABLE:
        return EnvironmentFault(str(url), f"the database does not answer ({_reason(error)})")
    return DatabaseError(f"{doing}: {_reason(error)}")


def _reason(error: Exception) -> str:
    # PyMySQL errors carry (code, message); the message alone reads better
    args: tuple[object, ...] = error.args
    return str(args[1]) if len(args) > 1 else str(error)
