#!/usr/bin/python
"""Ansible module: run `tarsdock apply --json` on the node; changed only when it changed."""

from __future__ import annotations

import json
import os

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: tarsdock_apply
short_description: Converge a Tars node with tarsdock apply
description:
  - Runs C(tarsdock apply --json) (with C(--check) in check mode, C(--diff) in diff mode) and
    reports C(changed) exactly as tarsdock does, per service the action and reason, and the
    file diffs. Fails when tarsdock reports an input error or a service that did not start.
options:
  config_dir:
    description: The tarsdock config dir.
    type: path
    default: /etc/tarsdock
  executable:
    description: The tarsdock command (found on PATH when not absolute).
    type: str
    default: tarsdock
  timeout:
    description: Seconds tarsdock waits for started services to run.
    type: int
    default: 60
  staged_dir:
    description:
      - In check mode, a staged copy of the config dir with this play's changes; apply then
        predicts from it as if it were I(config_dir). Ignored outside check mode.
    type: path
"""

RETURN = r"""
services:
  description: Per service acted on, its action (start, restart, remove), reasons, state, error.
  type: dict
  returned: always
files:
  description: Files written, removed and unchanged.
  type: dict
  returned: always
failed_services:
  description: Services that did not start, with their reasons in C(services).
  type: list
  returned: always
"""

EXIT_FAILED_START = 4


def summary(report: dict) -> str:
    """One line per service acted on, as `tarsdock apply` prints them, above the file diffs."""
    verb = "would " if report["check"] else ""
    lines = []
    for name, entry in sorted(report["services"].items()):
        why = ", ".join(entry.get("reasons") or [])
        lines.append(f"# {verb}{entry['action']} {name}" + (f" ({why})" if why else "") + "\n")
    return "".join(lines)


def find_executable(name: str, on_path) -> str | None:
    """The tarsdock command to run: `name` if it is a path to an executable, else found on
    PATH; None when there is none."""
    if "/" in name:
        return name if os.access(name, os.X_OK) else None
    return on_path(name)


def not_installed(module: AnsibleModule) -> None:
    """No tarsdock on the node. In check mode that is a fresh node whose install task only said
    it would install: apply would then converge the node (changed), and nothing more can be
    predicted. Otherwise an error that says which command is missing."""
    executable = module.params["executable"]
    if module.check_mode:
        module.exit_json(changed=True, services={}, files={}, failed_services=[],
                         msg=f"{executable} is not installed yet: after the install, apply "
                             "would converge the node (check mode cannot say more)")
    module.fail_json(msg=f"tarsdock is not installed: no executable {executable} (see "
                         "tarsdock_install and tarsdock_executable)")


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "config_dir": {"type": "path", "default": "/etc/tarsdock"},
            "executable": {"type": "str", "default": "tarsdock"},
            "timeout": {"type": "int", "default": 60},
            "staged_dir": {"type": "path"},
        },
        supports_check_mode=True,
    )
    executable = find_executable(module.params["executable"], module.get_bin_path)
    if executable is None:
        not_installed(module)
    config_dir, staged = module.params["config_dir"], module.params["staged_dir"]
    argv = [executable, "--config-dir", config_dir, "apply", "--json",
            "--timeout", str(module.params["timeout"])]
    if module.check_mode:
        argv.append("--check")
        if staged:
            argv[2] = staged
            argv += ["--as-config-dir", config_dir]
    if module._diff:
        argv.append("--diff")
    code, out, err = module.run_command(argv)
    try:
        report = json.loads(out)
    except ValueError:
        module.fail_json(msg=f"tarsdock apply exited {code}: {err.strip() or out.strip()}",
                         rc=code, stderr=err, cmd=argv)
    result = {
        "changed": bool(report["changed"]),
        "services": report["services"],
        "files": report["files"],
        "failed_services": report["failed"],
        "supervisor": report["supervisor"],
        "output_dir": report["output_dir"],
        "stderr": err,
        "rc": code,
    }
    if module._diff and (report.get("diff") or report["services"]):
        result["diff"] = {"prepared": summary(report) + (report.get("diff") or "")}
    if code == EXIT_FAILED_START or report["failed"]:
        reasons = "; ".join(f"{name}: {report['services'][name].get('error', '')}"
                            for name in report["failed"])
        module.fail_json(msg=f"services did not start: {reasons}", **result)
    if code != 0:
        module.fail_json(msg=f"tarsdock apply exited {code}: {err.strip()}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
