"""Time a no-change `tarsdock apply` on a 200-service node beside `generate` on the same node.

Ansible runs apply in every play, so the no-change path is the one that counts. The node: 200
container services (two templates, one image) under a real supervisord (this venv's, with
tarsdock's RPC interface) that has loaded every program; `enabled = false` so that none of them
runs (200 containers would measure Docker, not apply). A first apply writes and loads
everything; then, alternated run by run, whole processes of:

- `tarsdock apply` (no change: render, compare with the disk, supervisord reloadConfig, one
  Docker query for running containers' images; nothing written, nothing restarted);
- `tarsdock generate --format supervisord --out OUT` on the same files (no change).

With `--started-before`, every service has a starts file older than its files (it ran, then the
operator stopped it): each is a suspect of tarsdock.outdated, so every apply also asks
supervisord what runs (one getAllProcessInfo), the worst case of a no-change apply.

Target (issue 11): apply median <= 0.5 s. Prints medians, the ratio to generate, and checks
that no apply changed anything.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

SERVICES = 200
TARGET = 0.5
IMAGE = "tarsdock-test/busybox:1"
TEMPLATE = """<tars>
  <application>
    <server>
      env = LANG=C.UTF-8;GROUP={group}
      deactivating-timeout = 3000
    </server>
  </application>
</tars>
"""


def tool(name: str) -> str:
    found = Path(sys.executable).parent / name
    return str(found) if found.exists() else shutil.which(name) or name


def node_dir(root: Path, socket: Path, out: Path, count: int) -> Path:
    cfg = root / "cfg"
    (cfg / "templates").mkdir(parents=True)
    for group in ("a", "b"):
        (cfg / "templates" / f"bench.{group}").write_text(TEMPLATE.format(group=group))
    lines = [f'[node]\nname = "bench-apply-{os.getpid()}"\nlocalip = "127.0.0.1"\n'
             f'tars_path = "{root / "tars"}"\n'
             'locator = "tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p 17890"\n'
             f'supervisor_url = "unix://{socket}"\noutput_dir = "{out}"\n'
             f'[images.base]\nref = "{IMAGE}"\npull = "never"\n']
    for i in range(count):
        name = f"Bench.Server{i:03d}"
        lines.append(f'[services."{name}"]\ntype = "tars_cpp"\nimage = "base"\n'
                     f'enabled = false\ntemplate = "bench.{"ab"[i % 2]}"\n'
                     f'[[services."{name}".adapters]]\nname = "ObjAdapter"\n'
                     f'servant = "{name}.Obj"\nendpoint = "tcp -h 127.0.0.1 -p {20000 + i} '
                     '-t 60000"\n')
    (cfg / "node.toml").write_text("\n".join(lines))
    return cfg


def supervisord_conf(root: Path, socket: Path, out: Path) -> Path:
    conf = root / "supervisord.conf"
    conf.write_text(textwrap.dedent(f"""\
        [unix_http_server]
        file={socket}
        [supervisord]
        nodaemon=true
        logfile={root / "supervisord.log"}
        pidfile={root / "supervisord.pid"}
        childlogdir={root}
        [rpcinterface:supervisor]
        supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
        [rpcinterface:tarsdock]
        supervisor.rpcinterface_factory = tarsdock.supervisor_rpc:make_interface
        [include]
        files = {out}/*.conf
        """))
    return conf


def record_old_starts(cfg: Path, count: int) -> None:
    """A starts file per service, stamped a minute before its files were written."""
    state = cfg.parent / "tars" / "tarsdock" / "state"
    state.mkdir(parents=True, exist_ok=True)
    at = time.time_ns() - 60 * 10**9
    for i in range(count):
        path = state / f"Bench.Server{i:03d}.starts"
        path.write_text(f"{at // 10**9}\n")
        os.utime(path, ns=(at, at))


def timed(argv: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stderr}")
    return seconds, proc.stdout


def wait_socket(socket: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while not socket.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("supervisord did not start")
        time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=SERVICES)
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--started-before", action="store_true",
                        help="every service started (then stopped) before its files changed")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-apply-"))
    sock_dir = Path(tempfile.mkdtemp(prefix="ba-", dir="/tmp"))
    socket, out = sock_dir / "s.sock", root / "conf.d"
    out.mkdir()
    cfg = node_dir(root, socket, out, args.services)
    supervisor = subprocess.Popen([tool("supervisord"), "-n", "-c",
                                   str(supervisord_conf(root, socket, out))],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_socket(socket, supervisor)
        tarsdock = [tool("tarsdock"), "--config-dir", str(cfg)]
        first, _ = timed([*tarsdock, "apply", "--json"])
        if args.started_before:
            record_old_starts(cfg, args.services)
        apply_times, generate_times = [], []
        for _ in range(args.runs):
            seconds, report = timed([*tarsdock, "apply", "--json"])
            if json.loads(report)["changed"]:
                raise SystemExit(f"a no-change apply changed something: {report[:500]}")
            apply_times.append(seconds)
            seconds, summary = timed([*tarsdock, "generate", "--format", "supervisord",
                                      "--out", str(out)])
            if not summary.startswith("0 written"):
                raise SystemExit(f"a no-change generate wrote files: {summary}")
            generate_times.append(seconds)
    finally:
        supervisor.terminate()
        supervisor.wait(30)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(sock_dir, ignore_errors=True)
    apply_median = statistics.median(apply_times)
    generate_median = statistics.median(generate_times)
    print(f"{args.services} services, supervisord, {args.runs} runs each, alternated "
          f"(whole processes){', each started before its files' if args.started_before else ''}")
    print(f"  first apply (writes, loads):     {first:6.3f} s")
    print(f"  apply, no change:   median {apply_median:6.3f} s  (min {min(apply_times):.3f}, "
          f"max {max(apply_times):.3f})")
    print(f"  generate, no change: median {generate_median:6.3f} s  "
          f"(min {min(generate_times):.3f}, max {max(generate_times):.3f})")
    print(f"  apply / generate: {apply_median / generate_median:.2f}x; target apply <= "
          f"{TARGET} s: {'met' if apply_median <= TARGET else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
