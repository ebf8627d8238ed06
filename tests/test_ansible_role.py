"""The tarsdock_node role's pieces that run without a node: the TOML filter and the inventory."""

from __future__ import annotations

import importlib.util
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
    import os
    import subprocess
    import sys

    playbook_bin = Path(sys.executable).parent / "ansible-playbook"
    assert playbook_bin.exists(), "ansible-core is a test dependency"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    failing = tmp_path / "tarsdock"                 # an apply that fails without JSON
    failing.write_text("#!/bin/sh\necho 'error: boom' >&2\nexit 5\n")
    failing.chmod(0o755)
    secret = "s3cret-pw-do-not-log"
    (tmp_path / "play.yml").write_text(f"""
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: {sys.executable}
    tarsdock_install: none
    tarsdock_executable: {failing}
    tarsdock_config_dir: {tmp_path / "etc"}
    tarsdock_node: {{name: "127.0.0.1", tars_path: "{tmp_path / "tars"}"}}
    tarsdock_registry_passwords: {{hub: "{secret}"}}
  roles: [tarsdock_node]
""")
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(ROLE.parent), "TMPDIR": str(tmp),
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
           "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible-remote"), "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run([str(playbook_bin), "-i", "localhost,", "--check", "--diff", "-v",
                           str(tmp_path / "play.yml")], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode != 0 and "tarsdock apply exited 5" in proc.stdout, \
        proc.stdout + proc.stderr
    assert "Remove the staged config" in proc.stdout, proc.stdout
    assert [p.name for p in tmp.iterdir() if p.name.endswith(".tarsdock")] == []
    assert secret not in proc.stdout + proc.stderr
