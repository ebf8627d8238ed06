"""Time `tarsdock import` of a node of 500 services and 50 templates from a real MariaDB.

Starts a private MariaDB (tests/mariadb.py: own data dir, socket and port on 127.0.0.1), loads the
TarsFramework schema from ../shared/tars-db, inserts 50 templates (chains of 2 to 7 levels ending
at tars.default), 500 services with 2 adapters each, a registry and a base image. Then times, each
as a whole process: a first import into an empty dir, and a second import into the same dir (every
file unchanged). The peer, measured in the same run, is the `mariadb` command-line client reading
the same rows (the node's servers and adapters, every template) to /dev/null: the floor of getting
the data out at all. Target (issue 12): an import of this node in 2 s or less.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from mariadb import MariaDB, load_tars, start

NODE = "10.0.0.5"
USER, PASSWORD = "bench", "bench-pw"
TEMPLATE = """<tars>
  <application>
    <server>
      level{level}={name}
      logsize={level}0M
    </server>
    <client>
      timeout{level}=3000
    </client>
  </application>
</tars>
"""
PROFILE = "<tars>\n  <application>\n    <server>\n      logLevel=INFO\n    </server>\n" \
          "  </application>\n</tars>\n"


def fill(db: MariaDB, services: int, templates: int) -> None:
    """The node, `templates` templates in chains, `services` services with 2 adapters each."""
    db.sql("insert into t_node_info (node_name, endpoint_ip, data_dir) values (%s, %s, %s)",
           (NODE, NODE, "/usr/local/app/tars/tarsnode/data"))
    rows = [("tars.default", "", TEMPLATE.format(level=0, name="tars.default"))]
    for index in range(1, templates):
        parent = "tars.default" if index < 10 else f"bench.t{index - 9}"   # chains of 2..7
        name = f"bench.t{index}"
        rows.append((name, parent, TEMPLATE.format(level=index, name=name)))
    connection = db.connect("db_tars")
    with connection.cursor() as cursor:
        cursor.executemany("insert into t_profile_template (template_name, parents_name, "
                           "profile) values (%s, %s, %s)", rows)
        cursor.execute("insert into t_docker_registry (registry, username, password) values "
                       "('registry.example.com:5000', 'deploy', 'pw')")
        cursor.execute("insert into t_base_image (image, registryId) values "
                       "('registry.example.com:5000/tars/cppbase:3.0.15', 1)")
        servers, adapters = [], []
        for index in range(services):
            app, server = "Bench", f"Server{index}"
            template = f"bench.t{1 + index % (templates - 1)}"
            container = index % 2 == 0
            servers.append((app, server, NODE, "tars_cpp", template, "active",
                            "container" if container else "", 1 if container else 0, PROFILE))
            for adapter in range(2):
                port = 20000 + index * 2 + adapter
                obj = f"{app}.{server}.Obj{adapter}"
                adapters.append((app, server, NODE, f"{obj}Adapter",
                                 f"tcp -h {NODE} -p {port} -t 60000", obj, 5, 10000, 10000, 60000))
        cursor.executemany("insert into t_server_conf (application, server_name, node_name, "
                           "server_type, template_name, setting_state, run_type, base_image_id, "
                           "profile) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)", servers)
        cursor.executemany("insert into t_adapter_conf (application, server_name, node_name, "
                           "adapter_name, endpoint, servant, thread_num, max_connections, "
                           "queuecap, queuetimeout) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, "
                           "%s)", adapters)
    connection.close()


def timed(argv: list[str], cpu: list[float]) -> float:
    """Wall seconds of one child process, which must succeed; its CPU seconds (user + system)
    go to `cpu`: on a shared machine wall time also measures the others' load."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    start_time = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start_time
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu.append(now.ru_utime - used.ru_utime + now.ru_stime - used.ru_stime)
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=500)
    parser.add_argument("--templates", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-import.") as tmp:
        root = Path(tmp)
        db = start(root / "mariadb")
        try:
            load_tars(db, USER, PASSWORD)
            fill(db, options.services, options.templates)
            password = root / "password"
            password.write_text(PASSWORD)
            password.chmod(0o600)
            url = f"mysql://{USER}@127.0.0.1:{db.port}/db_tars"
            peer = ["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", str(db.port), "-u", USER,
                    f"-p{PASSWORD}", "--batch", "db_tars", "-e",
                    f"select * from t_server_conf where node_name='{NODE}'; select * from "
                    f"t_adapter_conf where node_name='{NODE}'; select * from t_profile_template"]
            first, again, floor = [], [], []
            cpu: dict[str, list[float]] = {"first": [], "again": [], "peer": []}
            for run in range(options.runs):
                out = root / f"out{run}"   # a dir per run: nothing is deleted between timings
                argv = [sys.executable, "-m", "tarsdock", "import", "--tars-db", url, "--node",
                        NODE, "--out", str(out), "--password-file", str(password)]
                first.append(timed(argv, cpu["first"]))
                again.append(timed(argv, cpu["again"]))
                floor.append(timed(peer, cpu["peer"]))
        finally:
            db.stop()
    f, a, p = (statistics.median(x) for x in (first, again, floor))
    fc, ac, pc = (statistics.median(cpu[k]) for k in ("first", "again", "peer"))
    print(f"import of {options.services} services, {options.templates} templates "
          f"({options.runs} runs, median):")
    print(f"  first import (all files new)   {f:6.3f} s   (min {min(first):.3f}; CPU {fc:.3f} s)")
    print(f"  second import (all unchanged)  {a:6.3f} s   (min {min(again):.3f}; CPU {ac:.3f} s)")
    print(f"  peer: mariadb client, same rows {p:6.3f} s   (CPU {pc:.3f} s)")
    print(f"  ratio first/peer {f / p:5.1f}x wall, {fc / pc:5.1f}x CPU; target first import "
          f"<= 2 s: {'met' if f <= 2.0 else 'MISSED'} (wall; CPU alone {fc:.3f} s: "
          f"{'met' if fc <= 2.0 else 'MISSED'}; load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
