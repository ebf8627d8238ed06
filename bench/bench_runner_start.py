"""Start-up cost of tarsdock-run (it runs on every start of a program): prints figures, no asserts.

Times `tarsdock-run NAME RUNFILE` with run files whose client exits at once (container mode with
/bin/true as the docker CLI; native mode exec'ing /bin/true) beside `/bin/true` alone,
alternated, so the difference is the wrapper's own cost, sourcing the run file and writing the
state dir's records included (a container's client exiting 0 is recorded as a failure, so that
figure is a whole start and end). Then the part that delays a container's start: from starting
the wrapper to the exec of its docker client (a script that notes the time), beside `sh -c 'exec
"$@"'` starting the same script.
"""

from __future__ import annotations

import statistics
import subprocess
import sysconfig
import tempfile
import time
from pathlib import Path

RUNS = 50
RUN_FILES = {
    "container": "mode=container\ntimeout=2\ndocker=/bin/true\ninstance=bench@1\nstate={state}\n"
                 "image=img\nsignals=forward\nset -- run --rm --name Bench.Run img\n",
    "native": "mode=native\nstate={state}\n"
              "set -- /usr/bin/env -- LANG=C.UTF-8 /bin/true --config=x\n",
}
MARK_CLIENT = '#!/bin/sh\ndate +%s%N >"{mark}"\n'


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - start) * 1000


def until_client(argv: list[str], mark: Path) -> float:
    """Milliseconds from starting argv to the exec of the marking client."""
    start = time.time_ns()
    subprocess.run(argv, check=False, stderr=subprocess.DEVNULL)
    return (int(mark.read_text()) - start) / 1e6


def main() -> None:
    script = str(Path(sysconfig.get_path("scripts")) / "tarsdock-run")
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        state.mkdir()
        paths = {mode: Path(tmp) / f"{mode}.run" for mode in RUN_FILES}
        for mode, path in paths.items():
            path.write_text(RUN_FILES[mode].format(state=state))
        wrapped: dict[str, list[float]] = {mode: [] for mode in RUN_FILES}
        bare = []
        for _ in range(RUNS):
            for mode, path in paths.items():
                wrapped[mode].append(timed([script, "Bench.Run", str(path)]))
            bare.append(timed(["/bin/true"]))
        mark, client = Path(tmp) / "mark", Path(tmp) / "client"
        client.write_text(MARK_CLIENT.format(mark=mark))
        client.chmod(0o755)
        marked = Path(tmp) / "marked.run"
        marked.write_text(RUN_FILES["container"].format(state=state).replace(
            "docker=/bin/true", f"docker={client}"))
        to_client, to_peer = [], []
        for _ in range(RUNS):
            to_client.append(until_client([script, "Bench.Run", str(marked)], mark))
            to_peer.append(until_client(["/bin/sh", "-c", 'exec "$@"', "sh", str(client)], mark))
    base = statistics.median(bare)
    print(f"/bin/true alone: median {base:.2f} ms over {RUNS} runs")
    for mode, times in wrapped.items():
        median = statistics.median(times)
        print(f"tarsdock-run, {mode} run file, around /bin/true: median {median:.2f} ms, "
              f"max {max(times):.2f} ms; wrapper cost {median - base:.2f} ms")
    ours, peer = statistics.median(to_client), statistics.median(to_peer)
    print(f"until the docker client runs: tarsdock-run median {ours:.2f} ms, "
          f"sh -c 'exec \"$@\"' median {peer:.2f} ms; delay added {ours - peer:.2f} ms "
          f"(ratio {ours / peer:.2f})")


if __name__ == "__main__":
    main()
