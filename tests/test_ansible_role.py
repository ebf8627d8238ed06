"""The tarsdock_node role's pieces that run without a node: the TOML filter and the inventory."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tarsdock.cli import main

ROLE = Path(__file__).resolve().parents[1] / "ansible" / "roles" / "tarsdock_node"


def load_filter() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "tarsdock_toml", ROLE / "filter_plugins" / "tarsdock_toml.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def role_play(tmp_path: Path, role_vars: str) -> str:
    """A play that runs the role on localhost with the given vars (YAML lines, 4 spaces in)."""
    return f"""
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: {sys.executable}
    tarsdock_install: none
    tarsdock_config_dir: {tmp_path / "etc"}
    tarsdock_node: {{name: "127.0.0.1", tars_path: "{tmp_path / "tars"}"}}
{role_vars}  roles: [tarsdock_node]
"""


def run_playbook(tmp_path: Path, play: str, *args: str, inventory: str = "localhost,",
                 **env: str) -> subprocess.CompletedProcess[str]:
    """ansible-playbook (this venv's) on `play`, written to tmp_path/play.yml, with the role
    on the roles path and Ansible's temp dirs under tmp_path; never raises on its status."""
    (tmp_path / "play.yml").write_text(play)
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(ROLE.parent), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
           "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible-remote"), **env}
    playbook_bin = Path(sys.executable).parent / "ansible-playbook"
    return subprocess.run([str(playbook_bin), "-i", inventory, *args, str(tmp_path / "play.yml")],
                          env=env, capture_output=True, text=True, timeout=300, check=False)


to_toml = load_filter().to_toml
keys = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
scalars = st.one_of(st.booleans(), st.integers(-2**63, 2**63 - 1),
                    st.text(st.characters(blacklist_categories=("Cs",))))


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(keys, st.dictionaries(keys, st.one_of(
    scalars, st.lists(st.text(st.characters(blacklist_categories=("Cs",)))),
    st.lists(st.dictionaries(keys, scalars, min_size=1), min_size=1)))))
def test_toml_filter_round_trips(data: dict[str, Any]) -> None:
    assert tomllib.loads(to_toml(data)) == data


def test_inventory_data_becomes_a_node_toml_tarsdock_accepts(tmp_path: Path) -> None:
    data = {
        "node": {"name": "10.0.0.5", "tars_path": str(tmp_path / "tars"), "supervisor": "systemd",
                 "locator": "tars.tarsregistry.QueryObj@tcp -h 10.0.0.1 -p 17890"},
        "registries": {}, "images": {"base": {"ref": "tarsdock-test/busybox:1"}},
        "templates": {"hello.server": {"parent": "tars.cpp.default"}},
        "services": {"Hello.HelloServer": {
            "type": "tars_cpp", "template": "hello.server", "image": "base",
            "adapters": [{"name": "HelloObjAdapter", "servant": "Hello.HelloServer.HelloObj",
                          "endpoint": "tcp -h 10.0.0.5 -p 20001 -t 60000", "threads": 5}]}},
    }
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "hello.server").write_text("<tars>\n</tars>\n")
    (tmp_path / "node.toml").write_text(to_toml(data))
    assert main(["--config-dir", str(tmp_path), "validate"]) == 0


def test_the_cloud_init_example_writes_a_config_dir_that_validates(tmp_path: Path) -> None:
    import yaml

    cloud = yaml.safe_load((ROLE.parents[2] / "examples" / "fleet" / "cloud-init.yml").read_text())
    for entry in cloud["write_files"]:
        target = tmp_path / Path(entry["path"]).relative_to("/etc/tarsdock")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(entry["content"])
    assert main(["--config-dir", str(tmp_path), "validate"]) == 0
    assert ["/opt/tarsdock/bin/tarsdock", "apply"] in cloud["runcmd"]


def test_a_failed_check_leaves_no_staged_copy_of_the_secrets(tmp_path: Path) -> None:
    """Check mode stages the config dir (registry passwords included) in a temp dir: it must go
    even when apply fails, and the password must never reach Ansible's output."""
    assert (Path(sys.executable).parent / "ansible-playbook").exists(), \
        "ansible-core is a test dependency"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    failing = tmp_path / "tarsdock"                 # an apply that fails without JSON
    failing.write_text("#!/bin/sh\necho 'error: boom' >&2\nexit 5\n")
    failing.chmod(0o755)
    secret = "s3cret-pw-do-not-log"
    play = role_play(tmp_path, f"""\
    tarsdock_executable: {failing}
    tarsdock_registry_passwords: {{hub: "{secret}"}}
""")
    proc = run_playbook(tmp_path, play, "--check", "--diff", "-v", TMPDIR=str(tmp))
    assert proc.returncode != 0 and "tarsdock apply exited 5" in proc.stdout, \
        proc.stdout + proc.stderr
    assert "Remove the staged config" in proc.stdout, proc.stdout
    assert [p.name for p in tmp.iterdir() if p.name.endswith(".tarsdock")] == []
    assert secret not in proc.stdout + proc.stderr


def test_check_mode_on_a_node_without_tarsdock_yet_predicts_a_change(tmp_path: Path) -> None:
    """A first --check play on a fresh node: the install task only said it would install, so
    there is no tarsdock to ask; the play must not fail (found by hand: 'Error executing
    command ... No such file or directory'). Without --check a missing tarsdock is an error
    naming it."""
    missing = tmp_path / "venv" / "bin" / "tarsdock"
    play_text = role_play(tmp_path, f"    tarsdock_executable: {missing}\n")

    def play(*args: str) -> subprocess.CompletedProcess[str]:
        return run_playbook(tmp_path, play_text, *args)

    checked = play("--check", "-v")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{missing} is not installed yet: after the install, apply would converge" \
        in checked.stdout
    assert not (tmp_path / "etc").exists(), "check mode wrote the config dir"
    applied = play()
    assert applied.returncode != 0
    assert f"tarsdock is not installed: no executable {missing}" in applied.stdout


def test_registry_passwords_are_0600_files_and_a_gone_registry_takes_its_file(
        tmp_path: Path) -> None:
    """The role writes each vaulted registry password to secrets/ID, mode 0600, named by
    node.toml; a registry dropped from the inventory loses its file; a play that changes
    nothing reports nothing changed. (A stand-in tarsdock answers apply: no node needed.)"""
    import stat

    fake = tmp_path / "tarsdock"
    fake.write_text("#!/bin/sh\necho '{\"changed\": false, \"check\": false, \"services\": {}, "
                    "\"files\": {}, \"failed\": [], \"supervisor\": \"supervisord\", "
                    "\"output_dir\": \"/x\", \"diff\": null}'\n")
    fake.chmod(0o755)
    etc = tmp_path / "etc"

    def play(passwords: dict[str, str]) -> dict[str, int]:
        registries = {rid: {"url": f"{rid}.example.com:5000", "username": "deploy"}
                      for rid in passwords}
        proc = run_playbook(tmp_path, role_play(tmp_path, f"""\
    tarsdock_executable: {fake}
    tarsdock_registries: {registries!r}
    tarsdock_registry_passwords: {passwords!r}
"""))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        for secret in passwords.values():
            assert secret not in proc.stdout + proc.stderr
        recap = re.search(r"localhost\s+:\s+ok=\d+\s+changed=(\d+)", proc.stdout)
        assert recap is not None, proc.stdout
        return {"changed": int(recap[1])}

    assert play({"hub": "pw-hub-1", "old": "pw-old-1"})["changed"] > 0
    for rid, secret in (("hub", "pw-hub-1"), ("old", "pw-old-1")):
        path = etc / "secrets" / rid
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == secret
    assert stat.S_IMODE((etc / "secrets").stat().st_mode) == 0o700
    toml = tomllib.loads((etc / "node.toml").read_text())
    assert toml["registries"]["hub"]["password_file"] == "secrets/hub"
    assert play({"hub": "pw-hub-1", "old": "pw-old-1"}) == {"changed": 0}

    assert play({"hub": "pw-hub-1"})["changed"] > 0
    assert sorted(p.name for p in (etc / "secrets").iterdir()) == ["hub"]
    assert "old" not in tomllib.loads((etc / "node.toml").read_text())["registries"]


def test_the_example_inventory_gives_each_node_a_config_dir_that_validates(
        tmp_path: Path) -> None:
    """examples/fleet/inventory.yml through the role's own config tasks (the tasks that write
    the config dir), each host's into a dir of its own, then `tarsdock validate` on each."""
    examples = ROLE.parents[2] / "examples" / "fleet"
    proc = run_playbook(tmp_path, f"""
- hosts: tars_nodes
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: {sys.executable}
    vault_registry_password: example-password
  tasks:
    - name: The role's config tasks, into a dir per host
      ansible.builtin.include_role:
        name: tarsdock_node
        tasks_from: config.yml
      vars:
        tarsdock_config_dest: "{tmp_path}/{{{{ inventory_hostname }}}}"
""", inventory=str(examples / "inventory.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    hosts = ["tars-a.example.com", "tars-b.example.com"]
    for host in hosts:
        assert main(["--config-dir", str(tmp_path / host), "validate"]) == 0, host
        assert (tmp_path / host / "secrets" / "main").read_text() == "example-password"
    nodes = [tomllib.loads((tmp_path / h / "node.toml").read_text())["node"] for h in hosts]
    assert [n["supervisor"] for n in nodes] == ["systemd", "supervisord"]
