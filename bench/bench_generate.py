"""Time `tarsdock generate` of 1,000 services beside honcho and Podman Quadlet, in the same run.

Whole processes, alternated run by run, on a tmpfs and on disk:
- systemd: `tarsdock generate --format systemd` against Quadlet (Debian 13's podman 5.4) on 1,000
  equivalent `.container` files (same image, host network and IPC through PodmanArgs, RunInit,
  the same volumes, env, labels, stop timeout and exec line) and `honcho export systemd`;
- supervisord: `tarsdock generate --format supervisord` against `honcho export supervisord`;
- both: the floor (floor_generate.py), a CPython program that only reads node.toml and writes the
  same files durably, as tarsdock does, with no logic: what is left between it and the peer is
  the whole budget of tarsdock's checks, rendering and imports.
Each run starts from new, empty dirs, so none finds a stamp of generate's to reuse (nothing is
deleted until the end: on this discard-mounted ext4 a large rmtree slows the metadata operations
that follow it for seconds). Then unchanged re-runs: their times (the stamp makes them no-ops)
and how many files they touched (mtime changed; should be 0).

Quadlet runs inside the chroot that `sh bench/peers/quadlet.sh` builds (root; a few minutes
once), with QUADLET_UNIT_DIRS. The work dirs live inside that chroot so all three tools write to
the same filesystems; the tmpfs is mounted there for the run and unmounted after. Without the
chroot (or without root) Quadlet is left out and the bench says so.

Targets (issue 14): systemd <= Quadlet's time on tmpfs and disk; supervisord <= 1.5x honcho's;
unchanged re-run <= 0.15 s with 0 files touched.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import installed

FORMATS = ("systemd", "supervisord")
PEERS_DIR = Path(os.environ.get("TARSDOCK_PEERS_DIR", "/var/tmp/tarsdock-peers"))
QUADLET = "/usr/libexec/podman/quadlet"
IMAGE = "registry.example.com:5000/tars/cppbase:3.0.15"
STOP_SECONDS = 5          # deactivating-timeout 5000 ms below
TEMPLATE = """<tars>
  <application>
    <server>
      env = LANG=C.UTF-8;GROUP={group}
      deactivating-timeout = 5000
    </server>
    <container>
      <volumes>
        /srv/shared/{group}=/shared
      </volumes>
    </container>
  </application>
</tars>
"""
CONTAINER = """[Unit]
Description=Tars service {name} (container)
PartOf=tars.target

[Container]
Image={image}
ContainerName={name}
Label=tarsdock.managed=true tarsdock.service={name} tarsdock.node=10.0.0.5
PodmanArgs=--net=host --ipc=host
RunInit=true
StopTimeout={stop}
Pull=never
Volume={service_dir}:{service_dir}
Volume={log_dir}:{log_dir}
Volume=/etc/localtime:/etc/localtime:ro
Volume=/srv/shared/{group}:/shared
Environment=LANG=C.UTF-8 GROUP={group}
WorkingDir={service_dir}/bin
Exec={service_dir}/bin/{server} --config={service_dir}/conf/{name}.config.conf

[Service]
Restart=always
RestartSec=3
TimeoutStopSec={stop_window}

[Install]
WantedBy=tars.target
"""


def make_config_dir(root: Path, services: int) -> Path:
    """A node of `services` container services on 10 templates; tars_path under root."""
    config = root / "cfg"
    (config / "templates").mkdir(parents=True)
    lines = [f'[node]\nname = "10.0.0.5"\ntars_path = "{root / "tars"}"\n'
             'locator = "tars.tarsregistry.QueryObj@tcp -h 10.0.0.1 -p 17890"\n'
             f'[images.base]\nref = "{IMAGE}"\n']
    for group in range(10):
        name = f"bench.group{group}"
        (config / "templates" / name).write_text(TEMPLATE.format(group=group))
        lines.append(f'[templates."{name}"]\nparent = "tars.cpp.default"\n')
    for index in range(services):
        service = f"Bench.Server{index}"
        lines.append(f'[services."{service}"]\ntype = "tars_cpp"\n'
                     f'template = "bench.group{index % 10}"\nimage = "base"\n'
                     f'[[services."{service}".adapters]]\nname = "ObjAdapter"\n'
                     f'servant = "{service}.Obj"\n'
                     f'endpoint = "tcp -h 10.0.0.5 -p {20000 + index} -t 60000"\n')
    (config / "node.toml").write_text("".join(lines))
    return config


def make_procfile(root: Path, services: int) -> Path:
    """A Procfile with one line per service, running the same kind of command."""
    path = root / "Procfile"
    path.write_text("".join(
        f"server{index}: /usr/local/app/tars/tarsnode/data/Bench.Server{index}/bin/Server{index}"
        f" --config=/usr/local/app/tars/tarsnode/data/Bench.Server{index}/conf/c.conf\n"
        for index in range(services)))
    return path


def make_containers(root: Path, services: int) -> Path:
    """Quadlet `.container` files equivalent to the tarsdock node's units (paths as tarsdock's)."""
    folder = root / "containers"
    folder.mkdir()
    tars = root / "tars"
    for index in range(services):
        name = f"Bench.Server{index}"
        text = CONTAINER.format(
            name=name, image=IMAGE, group=index % 10, server=f"Server{index}",
            service_dir=tars / "tarsnode" / "data" / name,
            log_dir=tars / "app_log" / "Bench" / f"Server{index}",
            stop=STOP_SECONDS, stop_window=STOP_SECONDS + 10)
        (folder / f"tars-{name}.container").write_text(text)
    return folder


def timed(argv: list[str], cpu: list[float] | None = None) -> float:
    """Wall seconds of one child process, which must succeed; its CPU seconds go to `cpu`."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    if cpu is not None:
        cpu.append(now.ru_utime - used.ru_utime + now.ru_stime - used.ru_stime)
    return wall


def mtimes(*dirs: Path) -> dict[Path, int]:
    """Every file under dirs with its mtime in ns."""
    return {path: path.stat().st_mtime_ns for d in dirs for path in d.rglob("*") if path.is_file()}


def tarsdock_cmd() -> list[str]:
    """The console script a user runs, from this interpreter's environment."""
    script = Path(sys.executable).parent / "tarsdock"
    return [str(script)] if script.exists() else [sys.executable, "-m", "tarsdock"]


def generate_argv(config: Path, fmt: str, out: Path) -> list[str]:
    return [*tarsdock_cmd(), "--config-dir", str(config), "generate", "--format", fmt,
            "--out", str(out)]


def floor_argv(config: Path, fmt: str, out: Path) -> list[str]:
    return [sys.executable, str(Path(__file__).parent / "floor_generate.py"), str(config), fmt,
            str(out)]


def honcho_argv(procfile: Path, fmt: str, out: Path) -> list[str]:
    honcho = shutil.which("honcho", path=str(Path(sys.executable).parent)) or "honcho"
    return [honcho, "export", "-f", str(procfile), "-d", str(procfile.parent), "-a", "bench",
            fmt, str(out)]


def quadlet_argv(chroot: Path, containers: Path, out: Path) -> list[str]:
    inside = "/" + str(containers.relative_to(chroot))
    return ["chroot", str(chroot), "/usr/bin/env", f"QUADLET_UNIT_DIRS={inside}", QUADLET,
            "/" + str(out.relative_to(chroot))]


def quadlet_chroot() -> Path | None:
    """The chroot holding Quadlet, if built and usable (root)."""
    chroot = PEERS_DIR / "trixie"
    if os.geteuid() != 0 or not (chroot / QUADLET.lstrip("/")).exists():
        return None
    return chroot


@contextlib.contextmanager
def work_dirs(chroot: Path | None) -> Iterator[list[tuple[str, Path]]]:
    """(label, dir) for a tmpfs and the disk: inside the chroot when there is one."""
    base = Path(tempfile.mkdtemp(prefix="bench-generate-",
                                 dir=str(chroot / "var/tmp") if chroot else None))
    tmpfs = base / "tmpfs"
    tmpfs.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2g", "bench-generate", str(tmpfs)]).returncode == 0
    try:
        places = [("tmpfs", tmpfs)] if mounted else []
        disk = base / "disk"
        disk.mkdir()
        yield [*places, ("disk", disk)]
    finally:
        if mounted:
            subprocess.run(["umount", str(tmpfs)], check=True)
        shutil.rmtree(base)


def median_line(label: str, times: list[float], cpu: list[float], services: int) -> str:
    med, used = statistics.median(times), statistics.median(cpu)
    return (f"    {label:26} median {med:.3f} s  min {min(times):.3f} s  "
            f"per service {med / services * 1e6:.0f} us  (CPU median {used:.3f} s)")


def ratio_line(times: dict[str, list[float]], cpu: dict[str, list[float]], label: str,
               target: str) -> str:
    wall = statistics.median(times["tarsdock"]) / statistics.median(times[label])
    used = statistics.median(cpu["tarsdock"]) / statistics.median(cpu[label])
    return f"    ratio tarsdock/{label}: wall {wall:.2f}, CPU {used:.2f}  (target {target})"


def compare(where: Path, fmt: str, runs: int, services: int, chroot: Path | None) -> None:
    """Alternate tarsdock, honcho and (systemd, with a chroot) Quadlet; print medians, ratios."""
    times: dict[str, list[float]] = {"tarsdock": [], "honcho": [], "quadlet": [], "floor": []}
    # CPU time beside wall time: on a shared machine the wall time also measures the others
    cpu: dict[str, list[float]] = {name: [] for name in times}
    for run in range(runs):
        work = where / f"{fmt}-{run}"
        config, procfile = make_config_dir(work, services), make_procfile(work, services)
        containers = make_containers(work, services) if chroot and fmt == "systemd" else None
        steps = [("tarsdock", generate_argv(config, fmt, work / "out")),
                 ("honcho", honcho_argv(procfile, fmt, work / "honcho")),
                 ("floor", floor_argv(make_config_dir(work / "floor", services), fmt,
                                      work / "floor" / "out"))]
        if chroot and containers:
            (work / "quadlet").mkdir()
            steps.append(("quadlet", quadlet_argv(chroot, containers, work / "quadlet")))
        # rotate the order so no tool always runs right after another's writes
        for name, argv in steps[run % len(steps):] + steps[:run % len(steps)]:
            os.sync()
            times[name].append(timed(argv, cpu[name]))
    print(f"  {fmt}:")
    print(median_line("tarsdock generate", times["tarsdock"], cpu["tarsdock"], services))
    print(median_line(f"honcho export {fmt}", times["honcho"], cpu["honcho"], services))
    if times["quadlet"]:
        print(median_line("quadlet", times["quadlet"], cpu["quadlet"], services))
        print(ratio_line(times, cpu, "quadlet", "<= 1"))
    target = "<= 1.5" if fmt == "supervisord" else "none"
    print(ratio_line(times, cpu, "honcho", target))
    print(median_line("floor (no logic)", times["floor"], cpu["floor"], services))
    print(ratio_line(times, cpu, "floor", "none: over it is tarsdock's logic and imports"))
    # the target's peer: Quadlet for systemd (1x), honcho for supervisord (1.5x)
    peer, factor = ("quadlet", 1.0) if times["quadlet"] else ("honcho", 1.5)
    floor, other = statistics.median(times["floor"]), statistics.median(times[peer])
    print(f"    floor/{peer}: wall {floor / other:.2f}; left over the floor for tarsdock's logic "
          f"and imports at {factor:g}x {peer}: {factor * other - floor:.3f} s, used: "
          f"{statistics.median(times['tarsdock']) - floor:.3f} s")
    rerun(work, config, fmt, runs)


def rerun(work: Path, config: Path, fmt: str, runs: int) -> None:
    """An unchanged second generate: time and files touched."""
    out, tars = work / "out", work / "tars"
    before = mtimes(out, tars)
    # a run whose inputs are under 2 s old writes no stamp (stamp.RACY_NS): as a user's would,
    # these inputs have been left alone for a while
    time.sleep(max(0.0, 2.1 - (time.time() - (config / "node.toml").stat().st_mtime)))
    timed(generate_argv(config, fmt, out))
    again: list[float] = []
    cpu: list[float] = []
    for _ in range(runs):
        again.append(timed(generate_argv(config, fmt, out), cpu))
    after = mtimes(out, tars)
    touched = sum(1 for path, stamp in after.items() if before.get(path) != stamp)
    print(f"    unchanged re-run           median {statistics.median(again):.3f} s  "
          f"(CPU {statistics.median(cpu):.3f} s)  files touched {touched} of {len(after)}  "
          "(target <= 0.150 s, 0 touched)")
    each = ", ".join(f"{t:.3f}" for t in again)
    print(f"      each: {each} s (after one full run that wrote the stamp)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    installed.byte_compile()
    chroot = quadlet_chroot()
    if chroot is None:
        print("quadlet: not available (run `sh bench/peers/quadlet.sh` as root); left out")
    print(f"{options.services} services, {options.runs} runs each, alternated")
    with work_dirs(chroot) as places:
        # generate's stamps (tarsdock/stamp.py) go with the run's dirs, not to ~/.cache
        os.environ["TARSDOCK_CACHE_DIR"] = str(places[-1][1] / "stamps")
        for label, where in places:
            print(f"{label} ({where}):")
            for fmt in FORMATS:
                compare(where, fmt, options.runs, options.services, chroot)


if __name__ == "__main__":
    main()
