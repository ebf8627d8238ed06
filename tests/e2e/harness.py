"""Real-parts building blocks for end-to-end tests: Docker, supervisord, a registry, systemd."""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
import xmlrpc.client
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import docker
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SETUP_SCRIPT = REPO_ROOT / "tests" / "env" / "setup.sh"
TEST_SERVER = REPO_ROOT / "tests" / "service" / "tars_test_server.py"
BUSYBOX_IMAGE = "tarsdock-test/busybox:1"
PYTHON_IMAGE = "tarsdock-test/python:1"
NODE_IMAGE = "tarsdock-test/node:1"
SYSTEMD_IMAGE = "tarsdock-test/systemd:1"
TEST_IMAGES = (BUSYBOX_IMAGE, PYTHON_IMAGE, NODE_IMAGE, SYSTEMD_IMAGE)
SETUP_HINT = f"run `bash {SETUP_SCRIPT.relative_to(REPO_ROOT)}` first"
# On every container the harness starts: `docker ps -a --filter label=...` finds leftovers.
HARNESS_LABEL = "tarsdock-test.harness=1"

T = TypeVar("T")


# ---- basics -------------------------------------------------------------------------------------

def require(condition: object, why: str) -> None:
    """Go on if `condition` holds (a str names a command on PATH); else fail (CI) or skip."""
    ok = shutil.which(condition) is not None if isinstance(condition, str) else bool(condition)
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI is set, so a missing part is a failure)", pytrace=False)
    pytest.skip(why)


# ---- this run's identity ------------------------------------------------------------------------
# Every name a test run gives the shared machine derives from RUN_ID: app names (so container
# names, which are App.Server), node names, systemd and helper container names. Two runs from two
# clones, or a run beside the demo, never meet; `remove_run_leftovers` finds what a run made.

RUN_ID = os.environ.get("TARSDOCK_TEST_RUN_ID") or f"r{os.urandom(4).hex()}"
if not re.fullmatch(r"[a-z][a-z0-9]{1,15}", RUN_ID):
    raise ValueError(f"TARSDOCK_TEST_RUN_ID={RUN_ID!r}: want a lowercase letter, then 1-15 "
                     "lowercase letters or digits")
NODE_NAME = f"e2e-{RUN_ID}"   # [node] name of the test nodes: labels tarsdock.node with the run


def app_name(base: str) -> str:
    """A Tars application name of this run: `base_RUNID` (container names are App.Server)."""
    return f"{base}_{RUN_ID}"


def run_name(base: str) -> str:
    """A container (or other) name of this run: `base-RUNID`."""
    return f"{base}-{RUN_ID}"


# Claims across runs: a file per claimed value under CLAIMS/KIND/, holding "RUN_ID PID". A claim
# whose process is gone is taken over; this run's claims are dropped when it exits.
CLAIMS = Path(tempfile.gettempdir()) / "tarsdock-test-claims"
_claimed: list[Path] = []


def _owner_alive(path: Path) -> bool:
    try:
        pid = int(path.read_text().split()[1])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return False
    return True


def claim(kind: str, value: str) -> bool:
    """Claim `value` of `kind` (a port, a subnet) for this run; False if another run holds it."""
    folder = CLAIMS / kind
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / value
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            if _owner_alive(path):
                return False
            path.unlink(missing_ok=True)   # its run died: take it over
            continue
        with os.fdopen(fd, "w") as out:
            out.write(f"{RUN_ID} {os.getpid()}\n")
        _claimed.append(path)
        return True
    return False


@atexit.register
def _release_claims() -> None:
    for path in _claimed:
        path.unlink(missing_ok=True)


# Test ports: below the kernel's ephemeral range (32768 and up here), so no outgoing connection
# of anything on the machine holds one; away from the demo's fixed ports (19386, its node_port,
# and 19401-19421); and below the range tarsdock draws admin ports from (30000-44999,
# tarsdock.localports), so no run's `local` port is drawn on a port another run has claimed
# but not yet bound. Each run starts at an offset of its own and claims each port it hands out.
PORTS = range(21000, 30000)
_next_port = itertools.count(int(hashlib.sha256(RUN_ID.encode()).hexdigest(), 16) % len(PORTS))


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on and no other test run has claimed."""
    for _ in range(len(PORTS)):
        port = PORTS[next(_next_port) % len(PORTS)]
        if _bindable(host, port) and claim("ports", str(port)):
            return port
    raise AssertionError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


def node_port() -> int:
    """A `[node] node_port` of this run: a free_port. Each node's server listens on its
    node_port, so two nodes on one host must not share one: tests never use the default 19386
    (the demo's, a real node's) unless the test is about the default."""
    return free_port()


def wait_for(probe: Callable[[], T], what: str, timeout: float = 30.0, interval: float = 0.1) -> T:
    """Poll `probe` until it returns something truthy; raise TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def run(cmd: Sequence[str | os.PathLike[str]], *, check: bool = True, timeout: float = 120,
        input: str | None = None, env: Mapping[str, str] | None = None,
        ) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output; with `check`, a failure shows its output."""
    proc = subprocess.run([os.fspath(c) for c in cmd], capture_output=True, text=True,
                          timeout=timeout, input=input, env=env, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(proc.args)} exited {proc.returncode}\n"
                             f"--- stdout\n{proc.stdout}--- stderr\n{proc.stderr}")
    return proc


def stop_process(proc: subprocess.Popen[Any], timeout: float) -> int:
    """SIGTERM a child we started, wait `timeout`, then SIGKILL it; returns its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file, or a note that it is missing."""
    if not path.exists():
        return f"({path} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def venv_tool(name: str) -> str | None:
    """A console script installed beside this Python (supervisord, tarsdock), else from PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def short_tempdir(prefix: str) -> Path:
    """A temp dir with a short path: unix socket paths must stay under 108 bytes."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


# ---- Docker -------------------------------------------------------------------------------------

def docker_client() -> docker.DockerClient:
    """A client of the local engine, or fail/skip (see `require`) when it does not answer."""
    require("docker", f"the docker CLI is not installed; {SETUP_HINT}")
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except docker.errors.DockerException as err:
        require(False, f"Docker Engine does not answer ({err}); {SETUP_HINT}")
        raise
    missing = [tag for tag in TEST_IMAGES if not image_exists(client, tag)]
    require(not missing, f"test images missing: {', '.join(missing)}; {SETUP_HINT}")
    check_default_bridge()
    return client


_bridge_checked: list[bool] = []


def check_default_bridge() -> None:
    """Once per run: the engine can start a container on its default bridge network, else fail
    with what is wrong with the engine (a dockerd once started with --bridge=none deletes
    docker0, and from then on every bridge-network container fails to start)."""
    if _bridge_checked:
        return
    name = run_name("tarsdock-bridge-check")
    proc = run(["docker", "run", "--rm", "--name", name, "--label", HARNESS_LABEL,
                "--network", "bridge", BUSYBOX_IMAGE, "true"], check=False, timeout=120)
    if proc.returncode != 0:
        remove_containers(name)
        links = run(["ip", "-o", "link", "show", "docker0"], check=False)
        network = run(["docker", "network", "inspect", "bridge", "--format",
                       "{{json .Options}} {{json .IPAM.Config}}"], check=False)
        pytest.fail(
            "the Docker Engine cannot start a container on its default bridge network: "
            f"`docker run --network bridge {BUSYBOX_IMAGE} true` said: {proc.stderr.strip()}\n"
            f"docker0: {(links.stdout + links.stderr).strip() or 'missing'}\n"
            f"bridge network: {(network.stdout + network.stderr).strip()}\n"
            "A dockerd started with --bridge=none (or one whose docker0 was deleted) does this; "
            "restart dockerd without --bridge=none so it makes docker0 again.", pytrace=False)
    _bridge_checked.append(True)


def remove_run_leftovers() -> list[str]:
    """Remove every container of this run (its RUN_ID in the name or in the tarsdock.node label),
    whatever ended the tests; returns their names."""
    out = run(["docker", "ps", "-a", "--format",
               '{{.ID}}\t{{.Names}}\t{{.Label "tarsdock.node"}}'], check=False).stdout
    found = [line.split("\t") for line in out.splitlines()]
    mine = {cid: name for cid, name, *node in found if RUN_ID in name or RUN_ID in "".join(node)}
    if mine:
        run(["docker", "rm", "-f", *mine], check=False)
    return sorted(mine.values())


def image_exists(client: docker.DockerClient, ref: str) -> bool:
    """Whether the engine has image `ref` locally."""
    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


def remove_registry_tags(engine: docker.DockerClient, address: str) -> None:
    """Drop every tag naming the registry at `address` (host:port), so that runs do not pile up
    tags on the shared engine. One listing (`GET /images/json`): the SDK's images.list()
    inspects each image after listing, and fails when another run removes one in between."""
    for image in engine.api.images():
        for tag in image.get("RepoTags") or ():
            if tag.startswith(f"{address}/"):
                with contextlib.suppress(docker.errors.ImageNotFound):
                    engine.images.remove(tag, force=True)


def remove_containers(*names: str) -> None:
    """Remove containers by name if they exist (leftovers of an earlier run)."""
    if names:
        run(["docker", "rm", "-f", *names], check=False)


def docker_cli_paths() -> tuple[Path, list[Path]]:
    """The host's docker CLI binary and the paths it is known by (to mount it at all of them)."""
    found = shutil.which("docker")
    if found is None:
        raise FileNotFoundError("docker CLI not on PATH")
    names = {Path("/usr/bin/docker"), Path(found)}
    return Path(found).resolve(), sorted(names)


# ---- the stand-in Tars server -------------------------------------------------------------------

def server_config_text(app: str, server: str, adapters: Mapping[str, str], *, logpath: Path,
                       datapath: Path, local: str = "") -> str:
    """TC_Config text for tars_test_server.py: `adapters` maps adapter name to endpoint."""
    adapter_lines = "".join(
        f"      <{name}>\n        endpoint={endpoint}\n      </{name}>\n"
        for name, endpoint in adapters.items()
    )
    local_line = f"      local={local}\n" if local else ""
    return (
        "<tars>\n  <application>\n    <server>\n"
        f"      app={app}\n      server={server}\n"
        f"      logpath={logpath}\n      datapath={datapath}\n{local_line}"
        f"{adapter_lines}    </server>\n  </application>\n</tars>\n"
    )


def read_json_when_present(path: Path, timeout: float = 30.0) -> dict[str, Any]:
    """Wait for a JSON file the test server writes (started.json, stopped.json) and read it."""
    wait_for(path.exists, f"{path}", timeout)
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def ask(host: str, port: int, timeout: float = 10.0) -> str:
    """Connect to a TCP endpoint and return the one line the test server answers."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def ask_when_up(host: str, port: int, timeout: float = 30.0) -> str:
    """`ask`, retrying while the endpoint refuses connections (the service is still starting)."""
    def probe() -> str:
        with contextlib.suppress(ConnectionError):
            return ask(host, port)
        return ""
    return wait_for(probe, f"an answer on {host}:{port}", timeout)


# ---- supervisord --------------------------------------------------------------------------------

class Supervisord:
    """A real supervisord (`-n`) over a temp config that includes `include_dir/*.conf`."""

    def __init__(self, include_dir: Path, workdir: Path, extra_conf: str = "",
                 env: Mapping[str, str] | None = None) -> None:
        self.include_dir = include_dir
        self.workdir = workdir
        self.extra_conf = extra_conf
        self.env = dict(os.environ if env is None else env)
        self.sockdir = short_tempdir("sv-")
        self.socket = self.sockdir / "supervisor.sock"
        self.conf = workdir / "supervisord.conf"
        self.log = workdir / "supervisord.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def config_text(self) -> str:
        """The supervisord.conf this instance runs with."""
        return textwrap.dedent(f"""\
            [unix_http_server]
            file={self.socket}
            [supervisord]
            nodaemon=true
            logfile={self.log}
            pidfile={self.workdir / "supervisord.pid"}
            childlogdir={self.workdir / "childlogs"}
            user=root
            [rpcinterface:supervisor]
            supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
            [supervisorctl]
            serverurl=unix://{self.socket}
            [include]
            files = {self.include_dir}/*.conf
            """) + self.extra_conf

    def start(self, timeout: float = 30.0) -> Supervisord:
        """Write the config, start `supervisord -n -c conf`, wait until it answers RPC."""
        binary = venv_tool("supervisord")
        require(binary, "supervisord is not installed (pip install supervisor)")
        assert binary is not None
        (self.workdir / "childlogs").mkdir(parents=True, exist_ok=True)
        self.conf.write_text(self.config_text())
        with (self.workdir / "supervisord.out").open("ab") as out:
            self.proc = subprocess.Popen([binary, "-n", "-c", str(self.conf)], stdout=out,
                                         stderr=subprocess.STDOUT, env=self.env,
                                         start_new_session=True)
        try:
            wait_for(self._answers, "supervisord to answer on its socket", timeout)
        except TimeoutError as err:
            raise AssertionError(f"{err}\n{tail(self.log)}") from err
        return self

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"supervisord exited {self.proc.returncode}:\n"
                                 f"{tail(self.workdir / 'supervisord.out')}\n{tail(self.log)}")
        try:
            state = self.rpc().supervisor.getState()
        except (OSError, xmlrpc.client.Fault):
            return False
        return bool(state["statename"] == "RUNNING")

    def rpc(self) -> Any:
        """An XML-RPC proxy on the unix socket (`.supervisor.getAllProcessInfo()` etc.)."""
        from supervisor.xmlrpc import SupervisorTransport
        transport = SupervisorTransport(None, None, f"unix://{self.socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def ctl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run `supervisorctl -c conf ARGS` (not checked: status exits 3 when a program is down)."""
        binary = venv_tool("supervisorctl") or "supervisorctl"
        return run([binary, "-c", str(self.conf), *args], check=False, timeout=timeout,
                   env=self.env)

    def status(self) -> dict[str, str]:
        """Program name (`group:name`, or `name` when alone in its group) to state name."""
        infos = self.rpc().supervisor.getAllProcessInfo()
        return {
            info["name"] if info["group"] == info["name"] else f"{info['group']}:{info['name']}":
            info["statename"]
            for info in infos
        }

    def wait_state(self, name: str, state: str, timeout: float = 60.0) -> None:
        """Wait until program `name` is in `state` (RUNNING, STOPPED, EXITED, FATAL, ...)."""
        try:
            wait_for(lambda: self.status().get(name) == state, f"{name} to be {state}", timeout,
                     interval=0.2)
        except TimeoutError as err:
            raise AssertionError(f"{err}; status now {self.status()}\n{tail(self.log)}") from err

    def reload(self) -> subprocess.CompletedProcess[str]:
        """`reread` then `update`, as an operator applies changed program files."""
        reread = self.ctl("reread")
        if reread.returncode != 0:
            return reread
        return self.ctl("update")

    def log_text(self) -> str:
        """supervisord's own log."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float = 90.0) -> int | None:
        """SIGTERM supervisord (it stops its programs first), wait, SIGKILL if stuck."""
        code = None if self.proc is None else stop_process(self.proc, timeout)
        shutil.rmtree(self.sockdir, ignore_errors=True)
        return code


# ---- a local registry ---------------------------------------------------------------------------

class Registry:
    """Debian's docker-registry on 127.0.0.1, filesystem storage, htpasswd (bcrypt) auth."""

    BINARY = "/usr/bin/docker-registry"

    def __init__(self, workdir: Path, port: int | None = None, username: str = "tarsdock",
                 password: str = "test-pass-0") -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.username = username
        self.password = password
        self.log = workdir / "registry.log"
        # A private docker CLI config: logins here never touch root's ~/.docker/config.json.
        self.docker_config = workdir / "docker-config"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """`127.0.0.1:PORT`, the registry part of image references."""
        return f"127.0.0.1:{self.port}"

    def config_text(self) -> str:
        """The registry's config.yml."""
        return textwrap.dedent(f"""\
            version: 0.1
            log:
              level: info
              accesslog:
                disabled: false
            storage:
              filesystem:
                rootdirectory: {self.workdir / "data"}
              delete:
                enabled: true
            http:
              addr: {self.address}
            auth:
              htpasswd:
                realm: tarsdock-test
                path: {self.workdir / "htpasswd"}
            """)

    def start(self, timeout: float = 30.0) -> Registry:
        """Write htpasswd and config, `docker-registry serve`, wait until /v2/ asks for auth."""
        require(Path(self.BINARY).exists(), f"{self.BINARY} missing; {SETUP_HINT}")
        require("htpasswd", "htpasswd missing (apt-get install apache2-utils)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.docker_config.mkdir(exist_ok=True)
        entry = run(["htpasswd", "-Bbn", self.username, self.password]).stdout.strip()
        (self.workdir / "htpasswd").write_text(entry + "\n")
        (self.workdir / "config.yml").write_text(self.config_text())
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([self.BINARY, "serve", str(self.workdir / "config.yml")],
                                         stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        try:
            wait_for(self._asks_for_auth, f"the registry on {self.address}", timeout)
        except TimeoutError as err:
            raise AssertionError(f"{err}\n{tail(self.log)}") from err
        return self

    def _asks_for_auth(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            code = self.proc.returncode
            raise AssertionError(f"docker-registry exited {code}:\n{tail(self.log)}")
        try:
            urllib.request.urlopen(f"http://{self.address}/v2/", timeout=5)
        except urllib.error.HTTPError as err:
            return err.code == 401
        except OSError:
            return False
        raise AssertionError("registry answered /v2/ without asking for credentials")

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the registry process."""
        if self.proc is not None:
            stop_process(self.proc, timeout)

    def log_text(self) -> str:
        """The registry's log (app log and access log, interleaved)."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def count_pulls(self, repo: str) -> int:
        """How many pulls of `repo` by tag reached the registry: successful manifest lookups by tag.

        A pull by tag asks for the tag's manifest once (Engine 20.10: HEAD, then GET by digest
        only when the image is not local; older engines: GET), so digest requests are not
        counted; pulls by digest are not counted at all.
        """
        pattern = re.compile(
            rf'"(?:GET|HEAD) /v2/{re.escape(repo)}/manifests/(?!sha256:)[^ ]+ HTTP/[\d.]+" 200 ')
        return len(pattern.findall(self.log_text()))

    def docker(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run the docker CLI with this registry's private login config."""
        env = {**os.environ, "DOCKER_CONFIG": str(self.docker_config)}
        return run(["docker", *args], input=input, env=env, timeout=300)

    def login(self) -> None:
        """`docker login` with the password on stdin."""
        self.docker("login", self.address, "-u", self.username, "--password-stdin",
                    input=self.password)

    def push(self, local_tag: str, repo_tag: str) -> str:
        """Tag `local_tag` as ADDRESS/`repo_tag`, log in, push; returns the full reference."""
        ref = f"{self.address}/{repo_tag}"
        self.docker("tag", local_tag, ref)
        self.login()
        self.docker("push", ref)
        return ref

    def write_password_file(self, path: Path) -> Path:
        """The password in a mode-0600 file, as node.toml's password_file expects."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(self.password + "\n")
        return path


# ---- systemd as PID 1 in a container ------------------------------------------------------------

def unmounted_cgroup_controllers(proc: Path = Path("/proc")) -> list[str]:
    """cgroup v1 controllers the kernel enables that no mount here shows ([] on cgroup v2).

    A systemd box (below) mounts such controllers in its own mount namespace, which puts every
    new process of the machine in them. The runc shim of a container started while it runs then
    cannot find their mount ("loading cgroup for PID: cannot find cgroup mount destination" in
    the dockerd log), watches no OOM, and Docker emits no `oom` event and sets no OOMKilled.
    tests/env/setup.sh mounts them on the host, as systemd does on a real node.
    """
    mounts = [line.partition(" - ")[2].split() for line in
              (proc / "self" / "mountinfo").read_text().splitlines()]
    if any(m[0] == "cgroup2" for m in mounts if m) and not any(
            m[0] == "cgroup" for m in mounts if m):
        return []
    mounted = {opt for m in mounts if len(m) >= 3 and m[0] == "cgroup"
               for opt in m[2].split(",")}
    enabled = [line.split() for line in (proc / "cgroups").read_text().splitlines()[1:]]
    return sorted(f[0] for f in enabled if len(f) == 4 and f[3] == "1" and f[0] not in mounted)


class SystemdContainer:
    """`tarsdock-test/systemd:1` booted with systemd as PID 1, driving the host's Docker Engine.

    Flags as DESIGN.md §8. Host dirs in `shared_dirs` are mounted at the same path, so a
    `docker run -v /x:/x` issued inside (through the host socket) names the same host path.
    The docker CLI is mounted at /usr/bin/docker and at its host path. With `with_tarsdock`,
    this Python installation and the checkout are mounted read-only at their host paths and
    the `tarsdock` and `tarsdock-run` scripts at /usr/local/bin, for units that call them.
    """

    def __init__(self, name: str, shared_dirs: Sequence[Path] = (), image: str = SYSTEMD_IMAGE,
                 docker_socket: str = "/var/run/docker.sock", with_tarsdock: bool = False,
                 extra_args: Sequence[str] = ()) -> None:
        self.name = name if RUN_ID in name else run_name(name)   # found by remove_run_leftovers
        self.shared_dirs = tuple(shared_dirs)
        self.image = image
        self.docker_socket = docker_socket
        self.with_tarsdock = with_tarsdock
        self.extra_args = tuple(extra_args)

    def _tarsdock_mounts(self) -> list[str]:
        prefixes = sorted({Path(sys.prefix), Path(sys.base_prefix), REPO_ROOT})
        args = [arg for path in prefixes for arg in ("-v", f"{path}:{path}:ro")]
        for script in ("tarsdock", "tarsdock-run"):
            found = venv_tool(script)
            if found is None:
                raise FileNotFoundError(f"{script} is not installed; {SETUP_HINT}")
            args += ["-v", f"{found}:/usr/local/bin/{script}:ro"]
        return args

    def run_args(self) -> list[str]:
        """The `docker run` argv that boots the container."""
        args = [
            "docker", "run", "-d", "--name", self.name, "--label", HARNESS_LABEL,
            "--label", f"tarsdock-test.run={RUN_ID}",
            "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined",
            "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup",
            "--tmpfs", "/run", "--tmpfs", "/run/lock", "-e", "container=docker",
            "-v", f"{self.docker_socket}:/var/run/docker.sock",
        ]
        binary, names = docker_cli_paths()
        for name in names:
            args += ["-v", f"{binary}:{name}:ro"]
        for path in self.shared_dirs:
            args += ["-v", f"{path}:{path}"]
        if self.with_tarsdock:
            args += self._tarsdock_mounts()
        return [*args, *self.extra_args, self.image]

    def start(self, timeout: float = 90.0) -> SystemdContainer:
        """Boot; wait until `systemctl is-system-running` says running or degraded."""
        remove_containers(self.name)
        run(self.run_args())
        try:
            wait_for(self._booted, f"systemd in {self.name} to finish booting", timeout,
                     interval=0.3)
        except TimeoutError as err:
            raise AssertionError(f"{err}\n{self.diagnostics()}") from err
        return self

    def _booted(self) -> bool:
        state = self.exec("systemctl", "is-system-running").stdout.strip()
        if state in ("running", "degraded"):
            return True
        if self.exec("true").returncode != 0:
            raise AssertionError(f"container {self.name} is not running\n{self.diagnostics()}")
        return False

    def diagnostics(self) -> str:
        """`docker logs`, failed units and the journal tail, for failure messages."""
        logs = run(["docker", "logs", "--tail", "40", self.name], check=False)
        failed = self.systemctl("--failed")
        journal = self.exec("journalctl", "--no-pager", "-n", "60")
        return (f"--- docker logs\n{logs.stdout}{logs.stderr}--- systemctl --failed\n"
                f"{failed.stdout}{failed.stderr}--- journal\n{journal.stdout}")

    def exec(self, *cmd: str, check: bool = False, input: str | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`docker exec` a command in the container."""
        interactive = ["-i"] if input is not None else []
        return run(["docker", "exec", *interactive, self.name, *cmd], check=check, input=input,
                   timeout=timeout)

    def systemctl(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        """`systemctl --no-pager ARGS` inside."""
        return self.exec("systemctl", "--no-pager", *args, check=check)

    def systemctl_ok(self, *args: str) -> str:
        """`systemctl ARGS` inside, which must succeed: its output; else AssertionError with the
        box's diagnostics."""
        proc = self.systemctl(*args)
        if proc.returncode != 0:
            raise AssertionError(f"systemctl {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}"
                                 f"\n{self.diagnostics()}")
        return proc.stdout

    def write_files(self, files: Mapping[str, str]) -> None:
        """Write each path -> text inside (drop-ins, say), making parent dirs; no reload."""
        for path, text in files.items():
            self.exec("mkdir", "-p", str(Path(path).parent), check=True)
            self.exec("tee", path, input=text, check=True)

    def install_units(self, unit_dir: Path, target: str = "/etc/systemd/system") -> None:
        """Copy the contents of a host dir of unit files into `target`, then daemon-reload."""
        run(["docker", "cp", f"{unit_dir}/.", f"{self.name}:{target}"])
        self.daemon_reload()

    def daemon_reload(self) -> None:
        """`systemctl daemon-reload`."""
        self.systemctl("daemon-reload", check=True)

    def journal(self, unit: str) -> str:
        """The journal of one unit, message text only."""
        return self.exec("journalctl", "--no-pager", "-o", "cat", "-u", unit).stdout

    def unit_state(self, unit: str) -> str:
        """`systemctl is-active UNIT`: active, inactive, failed, activating, ..."""
        return self.systemctl("is-active", unit).stdout.strip()

    def wait_unit_state(self, unit: str, state: str, timeout: float = 60.0) -> None:
        """Wait until `unit` is in `state`; on timeout show its status and journal."""
        try:
            wait_for(lambda: self.unit_state(unit) == state, f"{unit} to be {state}", timeout,
                     interval=0.3)
        except TimeoutError as err:
            status = self.systemctl("status", unit).stdout
            raise AssertionError(f"{err}\n{status}\n{self.journal(unit)}") from err

    def stop(self, timeout: int = 60) -> None:
        """Halt systemd (`docker stop` sends SIGRTMIN+3), then remove the container."""
        run(["docker", "stop", "-t", str(timeout), self.name], check=False,
            timeout=timeout + 30)
        remove_containers(self.name)


# ---- a private Docker Engine (for outages) ------------------------------------------------------

class PrivateDockerd:
    """A second dockerd of our own, to stop and start without touching the shared engine.

    It has its own socket, data root, exec root (and so its own containerd), pid file,
    containerd namespaces and its **own bridge**, created here with `ip link` and given with
    `--bridge`. Never `--bridge=none`: Docker 20.10 then deletes the host's docker0 and breaks
    every bridge-network container of the shared engine (DESIGN §11). No iptables rules: the
    tests use host networking and loopback only. `stop()` then `start()` is an outage that keeps
    images and data; `remove()` deletes everything it made.
    """

    def __init__(self, tag: str | None = None) -> None:
        self.tag = tag or os.urandom(3).hex()
        self.bridge = f"tdk{self.tag}"[:15]           # interface names: at most 15 bytes
        self.rundir = short_tempdir("dkd-")            # socket, pid file, exec root: short paths
        # the socket alone in a dir: a container mounts that dir, which outlives a restart of
        # the daemon (a mounted socket file would keep the old, dead inode)
        self.socket_dir = self.rundir / "sock"
        self.socket_dir.mkdir()
        self.socket = self.socket_dir / "docker.sock"
        self.host = f"unix://{self.socket}"
        # beside the shared engine's data root, whose filesystem its storage driver works on
        self.data_root = Path(tempfile.mkdtemp(prefix="tarsdock-dockerd-", dir="/var/lib"))
        self.log = self.data_root.parent / f"{self.data_root.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.bridge_made = False

    def _free_subnet(self) -> str:
        used = run(["ip", "-4", "-o", "addr"]).stdout + run(["ip", "-4", "route"]).stdout
        for third in range(200, 255):
            # claimed too: two runs making bridges at once must not pick the same subnet
            if f"10.213.{third}." not in used and claim("subnets", f"10.213.{third}.0"):
                return f"10.213.{third}.1/24"
        raise AssertionError("no free 10.213.x.0/24 subnet for a private bridge")

    def _make_bridge(self) -> None:
        require("ip", "iproute2 (`ip`) is needed for a private dockerd's bridge")
        run(["ip", "link", "add", self.bridge, "type", "bridge"])
        self.bridge_made = True
        run(["ip", "addr", "add", self._free_subnet(), "dev", self.bridge])
        run(["ip", "link", "set", self.bridge, "up"])

    def argv(self) -> list[str]:
        """The dockerd command line."""
        driver = run(["docker", "info", "--format", "{{.Driver}}"]).stdout.strip() or "vfs"
        return ["dockerd", "--host", self.host, "--data-root", str(self.data_root),
                "--exec-root", str(self.rundir / "exec"), "--pidfile", str(self.rundir / "pid"),
                "--bridge", self.bridge, "--iptables=false", "--ip-masq=false",
                "--containerd-namespace", f"tdk-{self.tag}",
                "--containerd-plugins-namespace", f"tdk-{self.tag}-plugins",
                "--storage-driver", driver]

    def start(self, timeout: float = 60.0) -> PrivateDockerd:
        """Start (or start again after `stop`) and wait until it answers `docker info`."""
        require("dockerd", f"dockerd is not installed; {SETUP_HINT}")
        if not self.bridge_made:
            self._make_bridge()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.argv(), stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        try:
            wait_for(self.answers, f"private dockerd on {self.socket}", timeout, interval=0.2)
        except TimeoutError as err:
            raise AssertionError(f"{err}\n{tail(self.log)}") from err
        return self

    def answers(self) -> bool:
        """Whether the daemon answers on its socket now."""
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"private dockerd exited {self.proc.returncode}\n"
                                 f"{tail(self.log)}")
        return self.docker("version", "--format", "{{.Server.Version}}",
                           check=False).returncode == 0

    def docker(self, *args: str, check: bool = True,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """The docker CLI against this daemon."""
        return run(["docker", "--host", self.host, *args], check=check, timeout=timeout)

    def load_image(self, ref: str) -> None:
        """Copy an image of the shared engine into this one (`docker save | docker load`)."""
        with tempfile.TemporaryFile() as archive:
            subprocess.run(["docker", "save", ref], stdout=archive, check=True, timeout=300)
            archive.seek(0)
            subprocess.run(["docker", "--host", self.host, "load", "-q"], stdin=archive,
                           stdout=subprocess.DEVNULL, check=True, timeout=300)

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM the daemon (it stops its containers) and wait until it is gone."""
        if self.proc is not None:
            stop_process(self.proc, timeout)
            self.proc = None

    def remove(self) -> None:
        """Stop it and delete its bridge, data root, exec root and log."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                self.docker("rm", "-f", *self.docker("ps", "-aq", check=False).stdout.split(),
                            check=False)
        self.stop()
        if self.bridge_made:
            run(["ip", "link", "delete", self.bridge], check=False)
            self.bridge_made = False
        # the exec root may hold mounts of a daemon killed the hard way: unmount before deleting
        for root in (self.rundir, self.data_root):
            mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                      if line.split()[1].startswith(str(root))]
            for mount in sorted(mounts, reverse=True):
                run(["umount", "-l", mount], check=False)
            shutil.rmtree(root, ignore_errors=True)
        self.log.unlink(missing_ok=True)
