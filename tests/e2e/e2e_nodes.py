"""Shared parts of the generate end-to-end tests: a config dir in tmp, the CLI, Docker, waiting."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import harness
from .harness import TEST_SERVER, run

LOCATOR = "tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p 17890"

# The environment the service must receive from the hostile template's server<env>.
HOSTILE_ENV = {
    "QUOTES": "it's \"double\" and 'single'",
    "PCT": "100% %(ENV_HOME)s %% %n",
    "DOLLAR": "$HOME ${HOME} $$ $(id) `id`",
    "BACKSLASH": "a\\b\\\\c\\n\\",
    "SPACES": "two  spaces   inside",
    "UNI": "ünïcødé ☃ 中文",
    "EQ": "a=b=c",
    "HASH": "x # not a comment",
}
# ... as written in TC_Config: tarsnode exports each item with sh (`export ITEM`), so each value
# is sh-quoted; then TC_Config escapes each backslash (\\ is one backslash). Items are separated
# by ';' and, for the last, '|', both of which tarsnode splits at.
_ITEMS = [f"{key}={shlex.quote(value)}" for key, value in HOSTILE_ENV.items()]
HOSTILE_ENV_LINE = "env = " + (";".join(_ITEMS[:-1]) + "|" + _ITEMS[-1]).replace("\\", "\\\\")
# Arguments of a not_tars command that every layer of quoting must pass through unchanged.
HOSTILE_ARGS = [
    "it's \"double\" and 'single'", "100% %(ENV_HOME)s %% %n", "$HOME ${HOME} $$ $(id) `id`",
    "back\\slash \\\\ \\n \\", "two  spaces", "ünïcødé ☃ 中文", ";|&><*?~!#", "tab\there",
    "a=b", "{}[]",
]


def answer(port: int, host: str = "127.0.0.1") -> str:
    """The line a test server sends on a new TCP connection ('' if nothing answers)."""
    try:
        return harness.ask(host, port, timeout=5)
    except OSError:
        return ""


def ctl(supervisor: harness.Supervisord, *args: str) -> str:
    """supervisorctl that must succeed; its output."""
    proc = supervisor.ctl(*args)
    if proc.returncode != 0 or "ERROR" in proc.stdout:
        raise AssertionError(f"supervisorctl {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout}{proc.stderr}\n{harness.tail(supervisor.log)}")
    return proc.stdout


def toml_str(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's for these characters)."""
    return json.dumps(text, ensure_ascii=False)


def tarsdock(*args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI, as a separate process."""
    return run([sys.executable, "-m", "tarsdock", *args])


class NodeDir:
    """A config dir in tmp whose services run the test server; tars_path in tmp too."""

    def __init__(self, root: Path, app: str, node_extra: str = "") -> None:
        self.root, self.app = root, app
        self.config_dir = root / "cfg"
        self.tars_path = root / "tars"
        self.node_extra = node_extra
        self.node_port = harness.node_port()   # never the default: the demo may run beside us
        self.services: dict[str, str] = {}
        (self.config_dir / "templates").mkdir(parents=True, exist_ok=True)

    def template(self, name: str, text: str) -> None:
        """Write templates/NAME."""
        (self.config_dir / "templates" / name).write_text(text)

    def service(self, server: str, table: str, port: int | None = None) -> str:
        """Add [services."APP.server"] with an adapter on `port`; returns the service name."""
        name = f"{self.app}.{server}"
        text = f'[services."{name}"]\n{table.strip()}\n'
        if port is not None:
            text += (f'[[services."{name}".adapters]]\nname = "{server}Adapter"\n'
                     f'servant = "{name}.Obj"\nendpoint = "tcp -h 127.0.0.1 -p {port} -t 60000"\n')
        self.services[name] = text
        return name

    def set_run(self, name: str, mode: str) -> None:
        """Switch a service's run mode in the manifest."""
        text = self.services[name]
        lines = [line for line in text.splitlines() if not line.startswith("run = ")]
        lines.insert(1, f'run = "{mode}"')
        self.services[name] = "\n".join(lines) + "\n"
        self.write()

    def write(self) -> None:
        """Write node.toml with every service."""
        head = (f'[node]\nname = "{harness.NODE_NAME}"\nlocalip = "127.0.0.1"\n'
                f'tars_path = "{self.tars_path}"\n'
                f'locator = "{LOCATOR}"\nnode_port = {self.node_port}\n{self.node_extra}\n')
        (self.config_dir / "node.toml").write_text(head + "\n".join(self.services.values()))

    def generate(self, fmt: str, out: Path) -> str:
        """`tarsdock generate`, then install the test server as every service's binary."""
        self.write()
        proc = tarsdock("--config-dir", str(self.config_dir), "generate", "--format", fmt,
                        "--out", str(out))
        for name in self.services:
            self.install_server(name)
        return proc.stdout

    def service_dir(self, name: str) -> Path:
        return self.tars_path / "tarsnode" / "data" / name

    def conf(self, name: str) -> Path:
        return self.service_dir(name) / "conf" / f"{name}.config.conf"

    def install_server(self, name: str, under: Path | None = None) -> Path:
        """Copy the test server to bin/<Server>, as a Tars release would put the binary."""
        bin_dir = (under or self.service_dir(name)) / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        target = bin_dir / name.split(".", 1)[1]
        shutil.copyfile(TEST_SERVER, target)
        target.chmod(0o755)
        return target

    def started(self, name: str, under: Path | None = None) -> Path:
        return (under or self.service_dir(name)) / "data" / "started.json"

    @property
    def instance(self) -> str:
        """This node's instance id (label tarsdock.instance), as tarsdock derives it."""
        from tarsdock.manifest import load_manifest

        return load_manifest(self.config_dir).node.instance

    def failures(self, name: str) -> list[Any]:
        """The failures tarsdock-run recorded for a service (tarsdock.state.Failure)."""
        from tarsdock.state import failures_path, read_failures

        return read_failures(failures_path(self.tars_path / "tarsdock" / "state", name))


def leftover(name: str, instance: str) -> str:
    """A running busybox container named `name` that says it is `instance`'s; its id."""
    return run(["docker", "run", "-d", "--name", name, "--label", harness.HARNESS_LABEL,
                "--label", f"tarsdock.instance={instance}", harness.BUSYBOX_IMAGE,
                "sleep", "1000"]).stdout.strip()


def container(name: str) -> dict[str, Any] | None:
    """`docker inspect` of a container by exact name, or None."""
    proc = run(["docker", "inspect", "--type", "container", name], check=False)
    if proc.returncode != 0:
        return None
    found: list[dict[str, Any]] = json.loads(proc.stdout)
    return found[0]


def apply_restarts_it_alone(identities: Callable[[], Mapping[str, object]],
                            apply: Callable[..., dict[str, Any]], server: str, name: str,
                            reasons: list[str], env: str) -> None:
    """`apply --check` plans a restart of `server` (service `name`) alone for `reasons` and
    acts on nothing; `apply` then writes no file, restarts it alone (`identities`: each server's
    process or container), and its container runs with `env` (NAME=VALUE)."""
    before = identities()
    check = apply("--check")
    assert check["services"] == {name: {"action": "restart", "reasons": reasons}}
    assert identities() == before
    report = apply()
    assert report["files"]["written"] == 0
    assert report["services"] == {name: {"action": "restart", "reasons": reasons,
                                         "state": "running"}}
    after = identities()
    assert after[server] != before[server]
    assert {s: p for s, p in after.items() if s != server} == \
        {s: p for s, p in before.items() if s != server}
    info = container(name)
    assert info is not None and env in info["Config"]["Env"]


def containers_named(name: str) -> list[str]:
    """IDs of every container, running or not, named exactly `name`."""
    out = run(["docker", "ps", "-aq", "--filter", f"name=^/{name}$"]).stdout
    return out.split()


def host_process(pid: int) -> str | None:
    """The command line of a host process in our PID namespace, or None if there is none."""
    try:
        if os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid"):
            return None
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None


def mounts(info: Mapping[str, Any]) -> dict[str, tuple[str, bool]]:
    """Container mount destination -> (source, read-write)."""
    return {m["Destination"]: (m["Source"], m["RW"]) for m in info["Mounts"]}


def env_of(facts: Mapping[str, Any]) -> dict[str, str]:
    env: dict[str, str] = facts["env"]
    return env


def assert_env(facts: Mapping[str, Any], expected: Mapping[str, str]) -> None:
    """Every expected variable is there with exactly its value."""
    env = env_of(facts)
    wrong = {key: env.get(key) for key, value in expected.items() if env.get(key) != value}
    assert not wrong, f"environment differs: got {wrong}, want {dict(expected)}"


# A service whose handlers append "SIGNAL PID" to the log file named by its argument, once per
# signal; it starts with "START PID". TERM is left to its default: it stops the service.
SIGNAL_SCRIPT = """log=$1
for sig in HUP USR1 USR2 QUIT WINCH INT; do trap "echo $sig \\$\\$ >> $log" $sig; done
echo START $$ >> "$log"
while :; do sleep 1 & wait $!; done
"""
# Holds ~200 MB in a shell variable: killed under memory=32m.
MEMORY_HOG = ["/bin/sh", "-c", "sleep 1; x=$(head -c 200000000 /dev/zero | tr '\\0' a); sleep 100"]
OOM_TEMPLATE = """<tars>
  <application>
    <container>
      memory = 32m
    </container>
  </application>
</tars>
"""


def signal_service(nd: NodeDir, server: str) -> str:
    """A busybox not_tars service running SIGNAL_SCRIPT; its log is signals_log(nd, name)."""
    name = f"{nd.app}.{server}"
    script, log = nd.service_dir(name) / "bin" / "sig.sh", signals_log(nd, name)
    command = ["/bin/sh", str(script), str(log)]
    return nd.service(server, f'type = "not_tars"\nimage = "{harness.BUSYBOX_IMAGE}"\n'
                      f'run = "container"\ncommand = {json.dumps(command)}')


def install_signal_script(nd: NodeDir, name: str) -> None:
    """Write SIGNAL_SCRIPT into the service's bin dir (after generate made it)."""
    script = nd.service_dir(name) / "bin" / "sig.sh"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(SIGNAL_SCRIPT)


def signals_log(nd: NodeDir, name: str) -> Path:
    return nd.service_dir(name) / "data" / "signals.log"


def signal_lines(nd: NodeDir, name: str) -> list[tuple[str, str]]:
    """(what, pid) per line of the service's signal log."""
    path = signals_log(nd, name)
    if not path.exists():
        return []
    return [(line.split()[0], line.split()[1]) for line in path.read_text().splitlines()
            if len(line.split()) == 2]


def oom_service(nd: NodeDir, server: str) -> str:
    """A busybox service that outgrows memory=32m (template e2e.oom) a second after its start;
    not started with the others (enabled = false): see `wait_until_oom_events_flow`."""
    nd.template("e2e.oom", OOM_TEMPLATE)
    return nd.service(server, f'type = "not_tars"\nimage = "{harness.BUSYBOX_IMAGE}"\n'
                      f'run = "container"\ntemplate = "e2e.oom"\nenabled = false\n'
                      f"command = {json.dumps(MEMORY_HOG)}")


def systemd_boxes() -> list[str]:
    """Names of the systemd-in-container boxes running on the engine (any test run's)."""
    out = run(["docker", "ps", "--filter", f"ancestor={harness.SYSTEMD_IMAGE}",
               "--format", "{{.Names}}"], check=False).stdout
    return out.split()


def wait_until_oom_events_flow(timeout: float = 600) -> None:
    """Return once Docker emits `oom` events: at once on a host that mounts every cgroup v1
    controller (tests/env/setup.sh does), else when no systemd box runs (other test runs start
    boxes). A box mounts the missing controllers in its own mount namespace, and the runc shim
    of every container started meanwhile cannot load its cgroups and watches no OOM
    (harness.unmounted_cgroup_controllers): an artefact of the test set-up, as a real node runs
    systemd on the host, in the host's mount namespace."""
    if not harness.unmounted_cgroup_controllers():
        return
    harness.wait_for(lambda: not systemd_boxes(), "no systemd box on the engine (oom events)",
                     timeout, interval=2)
