"""Work in shards (tarsdock.shards): the lockstep of processes itself, and that a node rendered
and written in several processes gives exactly what one process gives: the same files byte for
byte, the same errors and warnings in the same order, the same listing; and that a run that
fails, in any process, leaves no process, no temp file and no changed file behind."""

from __future__ import annotations

import errno
import itertools
import os
import re
import select
import shutil
import signal
import threading
from collections.abc import Callable, Generator, Sequence
from functools import partial
from pathlib import Path

import pytest
from test_bad_manifests import write_config
from test_generate_cases import CASES as CASE_DIR
from test_generate_cases import config_dir, read_case
from test_localports import NODE_TOML, PROFILE_ADAPTER, first_draw
from test_one_pipeline import INPUTS
from test_resolve import NODE

from tarsdock import generate as generate_module
from tarsdock import output, resolve, shards, stamp, templates
from tarsdock.cli import main
from tarsdock.errors import EnvironmentFault, ErrorCollector, TarsdockError, Terminated
from tarsdock.generate import Job, Part, Request, load_and_render_all
from tarsdock.model import ServiceSpec
from tarsdock.output import Change, Context, OutputFile
from tarsdock.records import replace
from tarsdock.shards import JOBS_VARIABLE, Lockstep, ShardFailed, Tickets, chunks, jobs, split

Shard = Generator[object, object, None]


def gone(pid: int) -> bool:
    """Whether a child of this process has ended and been reaped."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


@pytest.mark.parametrize(("count", "size"), [(n, c) for n in range(9) for c in range(1, 5)])
def test_split_keeps_order_and_evens_out_with_the_first_never_longer(count: int,
                                                                     size: int) -> None:
    items = list(range(count))
    parts = split(items, size)
    assert len(parts) == size and [i for part in parts for i in part] == items
    lengths = [len(part) for part in parts]
    assert max(lengths) - min(lengths) <= 1 and lengths[0] == min(lengths)


@pytest.mark.parametrize(("value", "services", "expected"), [
    ("1", 1000, 1), ("3", 1, 3), ("", 10, 1),
    ("", shards.MIN_SERVICES, min(len(os.sched_getaffinity(0)), shards.MAX_JOBS)),
    ("99", 1000, shards.MAX_JOBS), ("007", 1000, 7), ("9" * 5000, 1000, shards.MAX_JOBS)])
def test_jobs(monkeypatch: pytest.MonkeyPatch, value: str, services: int, expected: int) -> None:
    monkeypatch.setenv(JOBS_VARIABLE, value)
    assert jobs(services) == expected


@pytest.mark.parametrize("value", ["0", "00", "two", "-1", "\u00b2", "\u0662", " 2"])
def test_a_bad_jobs_variable_is_an_environment_fault(monkeypatch: pytest.MonkeyPatch,
                                                     value: str) -> None:
    monkeypatch.setenv(JOBS_VARIABLE, value)
    with pytest.raises(EnvironmentFault, match=f"TARSDOCK_JOBS: '{value}' is not a number"):
        jobs(1000)


def echo(tag: int) -> Shard:
    value = yield tag, os.getpid()
    yield tag, value


def test_lockstep_answers_in_shard_order_from_other_processes_and_reaps_them() -> None:
    with Lockstep([partial(echo, tag) for tag in range(3)]) as lockstep:
        first = lockstep.first()
        children = list(lockstep.pids)
        assert lockstep.send("go") == [(0, "go"), (1, "go"), (2, "go")]
    assert [tag for tag, _ in first] == [0, 1, 2]
    assert [pid for _, pid in first] == [os.getpid(), *children]
    assert len(set(children)) == 2 and all(gone(pid) for pid in children)


def woken(read: int) -> Shard:
    """A shard whose first step waits for a byte on `read` (a minute at most)."""
    ready, _, _ = select.select([read], [], [], 60)
    yield "woken" if ready else "never woken"


def test_meanwhile_runs_here_while_the_children_work_before_its_own_shard() -> None:
    # the child answers only once meanwhile has run here: were meanwhile run after the answers
    # are read, first() would wait for ever; and this process's shard starts after it
    read, write = os.pipe()
    ran: list[int] = []

    def meanwhile() -> None:
        ran.append(os.getpid())
        os.write(write, b"x")

    def mine() -> Shard:
        ran.append(0)
        yield "mine"

    try:
        with Lockstep([mine, partial(woken, read)]) as lockstep:
            assert ran == []
            assert lockstep.first(meanwhile) == ["mine", "woken"]
        assert ran == [os.getpid(), 0]
    finally:
        os.close(read)
        os.close(write)


def takes(tickets: Tickets, process: int) -> Shard:
    yield list(tickets.taken(process))


@pytest.mark.parametrize(("jobs_", "count"), [(3, 10), (2, 2), (3, 1), (2, 256)])
def test_tickets_give_each_chunk_once_and_each_process_its_own_first(jobs_: int,
                                                                     count: int) -> None:
    with Tickets(jobs_, count) as tickets, \
            Lockstep([partial(takes, tickets, i) for i in range(jobs_)]) as lockstep:
        taken = lockstep.first()
    assert sorted(i for chunk in taken for i in chunk) == list(range(count))
    assert [chunk[:1] for chunk in taken] == [[i] if i < count else [] for i in range(jobs_)]


@pytest.mark.parametrize(("items", "jobs_", "count"), [(1000, 2, 16), (11, 3, 11), (1, 2, 2),
                                                         (5000, 64, 256)])
def test_chunks_are_several_per_process_and_numbered_by_one_byte(items: int, jobs_: int,
                                                                  count: int) -> None:
    assert len(chunks(range(items), jobs_)) == count


@pytest.mark.parametrize(("items", "jobs_", "shrinks"), [
    (1000, 2, True), (3000, 8, True), (10**5, 2, True),
    # too few for the last to hold MIN_LAST: even runs
    (300, 2, False), (5000, 64, False), (37, 3, False)])
def test_chunks_keep_order_and_shrink_toward_the_end_unless_too_few(items: int, jobs_: int,
                                                                   shrinks: bool) -> None:
    parts = chunks(range(items), jobs_)
    assert [i for part in parts for i in part] == list(range(items))
    lengths = [len(part) for part in parts]
    if not shrinks:
        assert max(lengths) - min(lengths) <= 1
        return
    assert min(lengths) >= shards.MIN_LAST
    # each no longer than the one before (give or take the rounding), the last an eighth
    assert all(later <= earlier + 1 for earlier, later in itertools.pairwise(lengths))
    assert lengths[-1] * shards.TAIL <= lengths[0] + shards.TAIL < lengths[-1] * 2 * shards.TAIL


def fails(how: str) -> Shard:
    yield "rendered"
    if how == "raise":
        raise ValueError("boom")
    os.kill(os.getpid(), signal.SIGKILL)
    yield "never"


@pytest.mark.parametrize(("how", "cause"), [("raise", "ValueError: boom"),
                                            ("die", "died (killed by SIGKILL)")])
def test_a_child_that_fails_or_dies_is_one_line_naming_it(how: str, cause: str) -> None:
    with pytest.raises(ShardFailed) as caught, \
            Lockstep([partial(echo, 0), partial(fails, how)]) as lockstep:
        children = list(lockstep.pids)
        assert lockstep.first() == [(0, os.getpid()), "rendered"]
        lockstep.send(True)
    assert str(caught.value) == f"tarsdock worker process {children[0]}: {cause}"
    assert all(gone(pid) for pid in children)


def stages(directory: Path, fail: bool) -> Shard:
    """Stands for a shard of a write: stages a file, removed unless the shard is let finish."""
    temp = directory / f".{os.getpid()}.tmp"
    done = False
    try:
        temp.write_text("staged")
        if fail:
            raise KeyboardInterrupt   # Ctrl-C, as Python raises it in this process
        yield "staged"
        done = True
        yield "renamed"
    finally:
        if not done:
            temp.unlink()


@pytest.mark.parametrize("where", ["in a step", "between steps"])
def test_ctrl_c_runs_every_shards_finally_and_leaves_no_process(tmp_path: Path,
                                                                 where: str) -> None:
    start = [partial(stages, tmp_path, where == "in a step"),
             partial(stages, tmp_path, False), partial(stages, tmp_path, False)]
    with pytest.raises(KeyboardInterrupt), Lockstep(start) as lockstep:
        children = list(lockstep.pids)
        assert lockstep.first() == ["staged"] * 3
        assert len(list(tmp_path.iterdir())) == 3
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    assert len(children) == 2 and all(gone(pid) for pid in children)


@pytest.mark.parametrize(("fault", "expected"), [
    (KeyboardInterrupt(), KeyboardInterrupt),
    (OSError(errno.EAGAIN, "Resource temporarily unavailable"), ShardFailed)])
def test_a_fork_that_fails_or_is_interrupted_leaves_no_child(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: BaseException,
        expected: type[BaseException]) -> None:
    forks: list[int] = []
    real = os.fork

    def fork() -> int:
        if forks:
            raise fault      # the second fork: Ctrl-C, or no process to be had
        forks.append(real())
        return forks[-1]

    monkeypatch.setattr(os, "fork", fork)
    with pytest.raises(expected) as caught:
        Lockstep([partial(stages, tmp_path, False) for _ in range(3)])
    if expected is ShardFailed:
        assert str(caught.value) == ("tarsdock worker process: cannot start: Resource "
                                     "temporarily unavailable")
    assert gone(forks[0])   # the first child was reaped


# --- a node in several processes gives what one process gives --------------------------------

def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# Template problems that only the shards find (the templates are parsed where they are used and
# checked in shares): with 2 jobs the service is in the child's chunk, and the sorted template
# names (these, then the stock tars.*) are split 4 in the parent's share, 5 in the child's.
CYCLE = '[templates."t.a"]\nparent = "t.b"\n[templates."t.b"]\nparent = "t.a"\n'
TEMPLATE_ROWS: list[tuple[str, dict[str, str], str]] = [
    ("shards: a broken unused template in the parent's share",
     {"node.toml": NODE, "templates/t.app": "<tars>\n</tars>\n", "templates/a.unused": "<a>\n"},
     "error: templates/a.unused:1: "),
    ("shards: a broken unused template in the child's share",
     {"node.toml": NODE, "templates/t.app": "<tars>\n</tars>\n", "templates/zz.unused": "<a>\n"},
     "error: templates/zz.unused:1: "),
    ("shards: a broken template the child's service uses",
     {"node.toml": NODE, "templates/t.app": "<tars>\n<a>\n</tars>\n"},
     "error: templates/t.app:3: <a> closed by </tars>"),
    ("shards: a cycle of unused templates",
     {"node.toml": NODE + CYCLE, "templates/t.app": "<tars>\n</tars>\n",
      "templates/t.a": "<tars>\n</tars>\n", "templates/t.b": "<tars>\n</tars>\n"},
     "template cycle without a root: t.a -> t.b -> t.a"),
]


@pytest.mark.parametrize("given", [*(i[1] for i in INPUTS), *(r[1] for r in TEMPLATE_ROWS)],
                         ids=[*(i[0] for i in INPUTS), *(r[0] for r in TEMPLATE_ROWS)])
def test_every_bad_input_reports_the_same_in_shards(tmp_path: Path, given: object,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # the tables' one-service nodes: with 2 jobs the service is resolved in the child
    if isinstance(given, Path):
        directory = config_dir(read_case(given), tmp_path)
    else:
        directory = tmp_path / "config"
        write_config(directory, given)  # type: ignore[arg-type]
    base = ["--config-dir", str(directory)]
    for argv in ([*base, "validate"],
                 *([*base, "generate", "--format", fmt, "--out", str(tmp_path / fmt), "--diff"]
                   for fmt in ("systemd", "supervisord"))):
        monkeypatch.setenv(JOBS_VARIABLE, "1")
        alone = run(argv, capsys)
        monkeypatch.setenv(JOBS_VARIABLE, "2")
        assert run(argv, capsys) == alone, argv


@pytest.mark.parametrize(("files", "error"), [r[1:] for r in TEMPLATE_ROWS],
                         ids=[r[0] for r in TEMPLATE_ROWS])
def test_a_template_problem_found_in_a_shard_is_reported_at_its_line(
        tmp_path: Path, files: dict[str, str], error: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # so that the comparison above is between two reports of the error; nothing written
    node = files["node.toml"].replace('"/usr/local/app/tars"', f'"{tmp_path}/tars"')
    assert node != files["node.toml"]
    write_config(tmp_path / "cfg", {**files, "node.toml": node})
    monkeypatch.setenv(JOBS_VARIABLE, "2")
    base = ["--config-dir", str(tmp_path / "cfg")]
    out = ["--format", "systemd", "--out", str(tmp_path / "out")]
    for argv in ([*base, "validate"], [*base, "generate", *out, "--dry-run"],
                 [*base, "generate", *out]):
        code, _, err = run(argv, capsys)
        assert code == 1 and error in err, (argv, err)
    assert tree(tmp_path) == {}


# Units only rendering refuses: validate's shards render them without text
# (generate.check_units), and must fail exactly where one process rendering the text fails. With
# 2 jobs the first of two services is in this process's chunk, the second in the child's.
COMMAND = '[services."App.{name}"]\ntype = "not_tars"\nrun = "native"\ncommand = ["{argv0}"]\n'


def two(first: str, second: str) -> str:
    """A node of two not_tars services, App.A and App.B, running these executables."""
    return (NODE.split("[services.")[0] + COMMAND.format(name="A", argv0=first)
            + COMMAND.format(name="B", argv0=second))


RENDER_ROWS: list[tuple[str, str, str, str]] = [
    ("shards: only systemd refuses the child's service", "config", two("/bin/true", "-oops"),
     "error: node.toml:16: key 'command': executable '-oops' would be read as a systemd prefix"),
    ("shards: only systemd refuses this process's service", "config", two("@oops", "/bin/true"),
     "error: node.toml:12: key 'command': executable '@oops' would be read as a systemd prefix"),
    # both reported, in one report, whichever process rendered each
    ("shards: systemd refuses both services", "config", two("@oops", "-oops"),
     "error: node.toml:12: key 'command': executable '@oops' would be read as a systemd prefix "
     "(@-:+!|) of ExecStart=: give its absolute path\n"
     "error: node.toml:16: key 'command': executable '-oops' would be read as a systemd prefix"),
    # refused before the shards start now (options.path_errors), naming the option: the node
    # is still rendered in shards for its other errors, which agree with one process's
    ("shards: a line break in the config dir's path", "con\nfig",
     two("/bin/true", "-oops"), "error: --config-dir: 'TMP/con\\nfig' holds a line break, which "
     "supervisord and systemd files cannot carry\n"
     "error: node.toml:16: key 'command': executable '-oops' would be read as a systemd prefix"),
]


@pytest.mark.parametrize(("directory", "node", "error"), [r[1:] for r in RENDER_ROWS],
                         ids=[r[0] for r in RENDER_ROWS])
def test_a_unit_only_rendering_refuses_is_reported_in_shards_as_in_one_process(
        tmp_path: Path, directory: str, node: str, error: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    write_config(tmp_path / directory, {"node.toml": node})
    argv = ["--config-dir", str(tmp_path / directory), "validate"]
    monkeypatch.setenv(JOBS_VARIABLE, "1")
    alone = run(argv, capsys)
    assert alone[0] == 1 and error.replace("TMP", str(tmp_path)) in alone[2], alone
    monkeypatch.setenv(JOBS_VARIABLE, "2")
    assert run(argv, capsys) == alone


def test_an_admin_port_an_endpoint_takes_is_given_out_again_in_shards(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # only Hello.Other's resolved config (its profile) names the port Hello.Cpp's admin endpoint
    # is first given: the shards find it (ports_in_use) and the node goes to the pass in one
    # process, which gives out another
    taken = first_draw("Hello.Cpp")
    (tmp_path / "node.toml").write_text(NODE_TOML.format(tars=tmp_path / "tars") + f"""
[services."Hello.Other"]
type = "tars_cpp"
local_port = 20002
{PROFILE_ADAPTER.format(port=taken)}""")
    ctx = Context(tmp_path, "/opt/tarsdock/bin", "/usr/bin/docker")
    for count in ("1", "2"):
        monkeypatch.setenv(JOBS_VARIABLE, count)
        done = load_and_render_all(("systemd",), tmp_path, ctx, tmp_path / "out")
        ports = {spec.name: spec.local_port for spec in done.specs}
        assert ports["Hello.Cpp"] == taken + 1, count


def test_a_node_that_pins_every_admin_port_looks_for_no_port_in_use(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # no admin port given out: none can clash, and the shards do not look (ports_in_use walks
    # every resolved config); the run reports what it reports with the walk
    node = NODE_TOML.format(tars=tmp_path / "tars").replace(
        '[services."Hello.Cpp"]\ntype = "tars_cpp"\n',
        '[services."Hello.Cpp"]\ntype = "tars_cpp"\nlocal_port = 20000\n')
    assert "local_port = 20000" in node
    (tmp_path / "node.toml").write_text(node + f"""
[services."Hello.Other"]
type = "tars_cpp"
local_port = 20002
{PROFILE_ADAPTER.format(port=20003)}""")
    argv = ["--config-dir", str(tmp_path), "validate"]
    monkeypatch.setenv(JOBS_VARIABLE, "1")
    walked = run(argv, capsys)
    walks: list[int] = []
    real = resolve.ports_in_use

    def ports_in_use(services: list[object], manifest: object,
                     templates: object = None) -> frozenset[int]:
        walks.append(len(services))
        return real(services, manifest, templates)  # type: ignore[arg-type]

    monkeypatch.setattr(resolve, "ports_in_use", ports_in_use)
    assert run(argv, capsys) == walked and walked[0] == 0
    assert walks == []
    # the same node with one port given out walks the configs again
    (tmp_path / "node.toml").write_text(node.replace("local_port = 20000\n", ""))
    run(argv, capsys)
    assert sum(walks) == 3


def test_templates_are_parsed_in_the_shards_and_each_checked_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = {"node.toml": NODE, "templates/t.app": "<tars>\n</tars>\n",
             **{f"templates/t.x{i:02}": "<tars>\n</tars>\n" for i in range(20)}}
    write_config(tmp_path, files)
    log = tmp_path / "log"
    real_parse, real_check = templates.parse_template, resolve.check_templates

    def parse_template(file: templates.TemplateFile) -> templates.Template:
        with log.open("a") as out:
            out.write(f"parse {os.getpid()} {file.name}\n")
        return real_parse(file)

    def check_templates(given: templates.TemplateSet, errors: ErrorCollector,
                        names: Sequence[str] | None = None) -> None:
        with log.open("a") as out:
            out.write("".join(f"check {os.getpid()} {name}\n" for name in names or ()))
        real_check(given, errors, names)

    monkeypatch.setattr(templates, "parse_template", parse_template)
    monkeypatch.setattr(resolve, "check_templates", check_templates)
    inputs = resolve.read_inputs(tmp_path, False, ErrorCollector(), lazy=True)
    assert not log.exists()            # listed before the fork, not read
    monkeypatch.setenv(JOBS_VARIABLE, "3")
    ctx = Context(tmp_path, "/opt/tarsdock/bin", "/usr/bin/docker")
    assert load_and_render_all(("systemd",), tmp_path, ctx, tmp_path / "out").specs
    seen: dict[str, list[tuple[int, str]]] = {"parse": [], "check": []}
    for line in log.read_text().splitlines():
        what, pid, name = line.split()
        seen[what].append((int(pid), name))
    checked = sorted(name for _, name in seen["check"])
    assert checked == inputs.templates.names() and len(checked) == 28   # 21 and 7 stock
    assert len({pid for pid, _ in seen["check"]}) == 3
    # each process parses a template once at most: what its checks and its chains need
    assert len(set(seen["parse"])) == len(seen["parse"])
    assert {name for _, name in seen["parse"]} == set(checked)


def test_a_chunks_share_of_the_checks_holds_its_own_templates_and_each_name_once(
        tmp_path: Path) -> None:
    write_config(tmp_path, {"node.toml": NODE, **{f"templates/t.{c}": "<tars>\n</tars>\n"
                                                  for c in "abcdefg"}})
    inputs = resolve.read_inputs(tmp_path, False, ErrorCollector(), lazy=True)
    spec = inputs.specs["App.Server"]
    # chunk 2 uses t.g and a template that does not exist; chunk 3 uses t.b and t.g again
    uses = [[], ["t.f"], ["t.g", "t.gone"], ["t.b", "t.g"]]
    chunks_ = [[replace(spec, template=name) for name in names] for names in uses]
    shares = resolve.check_shares(inputs.templates, chunks_)
    names = [name for share in shares for name in share]
    assert sorted(names) == inputs.templates.names() and len(set(names)) == len(names)
    assert shares[1][0] == "t.f" and shares[2][0] == "t.g" and shares[3][0] == "t.b"
    # the rest (t.a, t.c ... and the stock templates) evenly, in name order
    rest = [name for name in inputs.templates.names() if name not in ("t.b", "t.f", "t.g")]
    assert [share[len(own):] for share, own in zip(shares, [[], [1], [1], [1]], strict=True)] \
        == split(rest, 4)


@pytest.mark.parametrize("path", sorted(CASE_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_every_case_renders_the_same_in_shards(tmp_path: Path, path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    case = read_case(path)
    directory = config_dir(case, tmp_path)
    ctx = Context(directory, "/opt/tarsdock/bin", "/usr/bin/docker")

    def rendered(count: str | None) -> object:
        """With `count` processes; None: the whole pipeline as one process ran it before shards."""
        try:
            if count is None:
                done = generate_module._load_and_render_located(Request(
                    case.formats, directory, ctx, tmp_path / "out", True, True))
            else:
                monkeypatch.setenv(JOBS_VARIABLE, count)
                done = load_and_render_all(case.formats, directory, ctx, tmp_path / "out")
        except TarsdockError as error:
            return type(error), str(error)
        files = {fmt: [(f.path, f.content, f.mode) for f in files]
                 for fmt, files in done.files.items()}
        return done.specs, files, done.dirs, [str(w) for w in done.warnings]

    alone = rendered("1")
    assert rendered("3") == alone
    assert rendered(None) == alone


SERVICE = """\
[services."App.S{i:02}"]
type = "tars_cpp"
template = "t.app"
image = "busybox"
profile = "{profile}"
[[services."App.S{i:02}".adapters]]
servant = "App.S{i:02}.Obj"
endpoint = "tcp -h 127.0.0.1 -p {port}"
"""
# a warning (hearttimeout shorter than two heartbeats) and an error (a bad port)
WARNS = "<tars>\\n<application>\\n<server>\\nhearttimeout=5000\\n</server>\\n</application>\\n" \
    "</tars>"
FAILS = "<tars>\\n<application>\\n<container>\\n<ports>\\nx:y\\n</ports>\\n</container>\\n" \
    "</application>\\n</tars>"
TEMPLATE = "<tars>\n  <application>\n    <server>\n    </server>\n  </application>\n</tars>\n"


def node(root: Path, count: int, profiles: dict[int, str]) -> Path:
    """A config dir of `count` services, some with a profile; tars_path under root."""
    head = (f'[node]\nname = "10.0.0.5"\ntars_path = "{root}/tars"\n'
            'locator = "tars.tarsregistry.QueryObj@tcp -h 10.0.0.1 -p 17890"\n'
            'network = "bridge"\n[images.busybox]\nref = "tarsdock-test/busybox:1"\n')
    services = [SERVICE.format(i=i, port=20000 + i, profile=profiles.get(i, ""))
                for i in range(count)]
    write_config(root / "cfg", {"node.toml": head + "".join(services), "templates/t.app": TEMPLATE})
    return root / "cfg"


def tree(root: Path) -> dict[str, tuple[int, str]]:
    """Every file and directory under root (but the config dir): mode and content."""
    return {str(p.relative_to(root)): (p.stat().st_mode, p.read_text() if p.is_file() else "")
            for p in sorted(root.rglob("*")) if p.relative_to(root).parts[0] != "cfg"}


def generate(root: Path, fmt: str, jobs_: str, monkeypatch: pytest.MonkeyPatch,
             capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    monkeypatch.setenv(JOBS_VARIABLE, jobs_)
    return run(["--config-dir", str(root / "cfg"), "generate", "--format", fmt,
                "--out", str(root / "out"), *extra], capsys)


@pytest.mark.parametrize("fmt", ["systemd", "supervisord"])
def test_a_node_written_in_shards_is_byte_identical(tmp_path: Path, fmt: str,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    node(tmp_path, 11, {3: WARNS, 9: WARNS})   # a warning in the first shard and the last
    alone = generate(tmp_path, fmt, "1", monkeypatch, capsys)
    files = tree(tmp_path)
    shutil.rmtree(tmp_path / "out")
    shutil.rmtree(tmp_path / "tars")
    renderers = tmp_path / "renderers"   # outside the compared trees
    real = generate_module.render_part

    def render_part(job: Job, specs: Sequence[ServiceSpec], templates: Sequence[str]
                    ) -> Part | None:
        if job.request.formats:      # not the second pass, for the warnings' lines
            with renderers.open("a") as log:
                log.write(f"{os.getpid()} {len(specs)}\n")
        return real(job, specs, templates)

    monkeypatch.setattr(generate_module, "render_part", render_part)
    assert generate(tmp_path, fmt, "3", monkeypatch, capsys) == alone
    # 11 chunks of one service, each process rendering its own first, then any left
    rendered: dict[int, int] = {}
    for line in renderers.read_text().splitlines():
        pid, count = map(int, line.split())
        rendered[pid] = rendered.get(pid, 0) + count
    assert len(rendered) == 3 and os.getpid() in rendered and min(rendered.values()) >= 1
    assert sum(rendered.values()) == 11
    renderers.unlink()
    assert alone[0] == 0 and alone[2].count("warning: ") == 2, alone
    assert tree(tmp_path) == files
    # and an update (a service more, a profile less): the listing and the counts
    node(tmp_path, 12, {3: WARNS})
    listed = generate(tmp_path, fmt, "1", monkeypatch, capsys, "--dry-run")
    assert generate(tmp_path, fmt, "3", monkeypatch, capsys, "--dry-run") == listed
    assert listed[1].count("new ") == 2 + (fmt == "supervisord") and "changed" in listed[1]
    assert generate(tmp_path, fmt, "3", monkeypatch, capsys)[1].startswith(
        f"{4 + (fmt == 'supervisord')} written, ")


def test_errors_in_several_shards_are_those_of_one_process_and_nothing_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    node(tmp_path, 11, {1: FAILS, 5: WARNS, 10: FAILS})
    alone = generate(tmp_path, "systemd", "1", monkeypatch, capsys)
    assert alone[0] == 1 and alone[2].count("error: ") == 2, alone   # each at its line
    assert "error: node.toml:24: key 'x:y'" in alone[2] and "error: node.toml:96:" in alone[2]
    assert generate(tmp_path, "systemd", "3", monkeypatch, capsys) == alone
    assert tree(tmp_path) == {}


def write_new_with_a_writer_killed(targets: list[Path]) -> None:
    """Write "new" over each target in three processes, one of which the caller's fault kills:
    the write fails with that one line."""
    changes = [Change("changed", path, OutputFile(path, "new\n")) for path in targets]
    with pytest.raises(ShardFailed, match=r"^tarsdock worker process \d+: died \(killed by "
                                          r"SIGKILL\)$"):
        output.write(changes, jobs=3)


def children() -> set[int]:
    """The pids of this process's children."""
    me = os.getpid()
    return {int(pid) for pid in Path(f"/proc/{me}/task/{me}/children").read_text().split()}


def old_files(root: Path) -> list[Path]:
    """Six files saying "old", each in a directory of its own (one file a chunk of three
    processes' write)."""
    targets = [root / f"d{i}" / "f" for i in range(6)]
    for path in targets:
        path.parent.mkdir()
        path.write_text("old\n")
    return targets


def generated_then_every_config_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """An 11-service node generated once (supervisord, one process), then changed so that every
    service's config changes."""
    node(tmp_path, 11, {})
    assert generate(tmp_path, "supervisord", "1", monkeypatch, capsys)[0] == 0
    node(tmp_path, 11, {i: WARNS for i in range(11)})


def temp_files(root: Path) -> list[Path]:
    return [path for path in root.rglob(".*.tmp")]


@pytest.mark.parametrize("where", ["conf", "data"])
def test_a_write_failing_in_one_shard_changes_no_file_and_leaves_no_temp_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        where: str) -> None:
    generated_then_every_config_changed(tmp_path, monkeypatch, capsys)
    # a file where App.S09's conf dir must be: the process that takes its chunk fails to read
    # its config file to compare it; where its data dir must be (no file in it): it fails to
    # make the dir, once every process has planned
    conf = tmp_path / f"tars/tarsnode/data/App.S09/{where}"
    shutil.rmtree(conf)
    conf.write_text("in the way\n")
    before = tree(tmp_path)
    alone = generate(tmp_path, "supervisord", "1", monkeypatch, capsys)
    assert alone[0] == 5 and f"error: {conf}" in alone[2], alone
    assert generate(tmp_path, "supervisord", "3", monkeypatch, capsys) == alone
    assert tree(tmp_path) == before and temp_files(tmp_path) == []


def after_each_stage(monkeypatch: pytest.MonkeyPatch, then: Callable[[OutputFile], None]
                     ) -> None:
    """output._stage as it is, then `then(file)` in the process that staged the file."""
    real = output._stage

    def stage(file: OutputFile, umask: int, pid: int, staged: list[tuple[str, str]],
              found: dict[str, int]) -> None:
        real(file, umask, pid, staged, found)
        then(file)

    monkeypatch.setattr(output, "_stage", stage)


def test_a_writer_process_killed_is_one_line_and_leaves_no_temp_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    targets = old_files(tmp_path)
    parent = os.getpid()

    def staged(file: OutputFile) -> None:
        if os.getpid() != parent:
            with (tmp_path / "writers").open("a") as log:
                log.write(f"{os.getpid()}\n")
            if file.path == targets[2]:   # one file a chunk: the third process's own first
                os.kill(os.getpid(), signal.SIGKILL)   # once it is staged

    after_each_stage(monkeypatch, staged)
    write_new_with_a_writer_killed(targets)
    assert [path.read_text() for path in targets] == ["old\n"] * 6
    assert temp_files(tmp_path) == []
    writers = {int(pid) for pid in (tmp_path / "writers").read_text().split()}
    assert len(writers) == 2 and all(gone(pid) for pid in writers)


@pytest.mark.parametrize("jobs_", [1, 3])
def test_ctrl_c_just_after_a_temp_file_is_made_leaves_no_temp_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs_: int) -> None:
    # a KeyboardInterrupt is raised at the first bytecode after os.open returns, before _stage
    # holds the fd or its caller the name (found by a Ctrl-C loop on a 1,000-service node)
    targets = old_files(tmp_path)
    parent, real, opened = os.getpid(), os.open, []

    def open_(path: str, flags: int, mode: int = 0o777) -> int:
        fd = real(path, flags, mode)
        if os.getpid() == parent and str(path).endswith(".tmp"):
            opened.append(path)   # this process's first: its own first chunk, whoever is quicker
            os.close(fd)
            raise KeyboardInterrupt
        return fd

    monkeypatch.setattr(os, "open", open_)
    changes = [Change("changed", path, OutputFile(path, "new\n")) for path in targets]
    with pytest.raises(KeyboardInterrupt):
        output.write(changes, jobs=jobs_)
    assert len(opened) == 1
    assert [path.read_text() for path in targets] == ["old\n"] * 6
    assert temp_files(tmp_path) == []


def test_a_writer_process_that_cannot_start_is_one_line_and_changes_no_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    targets = old_files(tmp_path)
    forks: list[int] = []
    real = os.fork

    def fork() -> int:
        if forks:       # the second writer: no process to be had
            raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
        forks.append(real())
        return forks[-1]

    monkeypatch.setattr(os, "fork", fork)
    changes = [Change("changed", path, OutputFile(path, "new\n")) for path in targets]
    with pytest.raises(ShardFailed, match=r"^tarsdock worker process: cannot start: Resource"):
        output.write(changes, jobs=3)
    assert [path.read_text() for path in targets] == ["old\n"] * 6
    assert temp_files(tmp_path) == [] and gone(forks[0])


def test_a_writer_killed_while_renaming_leaves_every_file_new_not_a_mix(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # its files were staged and synced before any rename: this process renames what it left
    targets = old_files(tmp_path)
    parent, real = os.getpid(), os.replace

    def replace(source: str, target: str) -> None:
        real(source, target)
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)   # after its first rename (the OOM killer)

    monkeypatch.setattr(os, "replace", replace)
    write_new_with_a_writer_killed(targets)
    assert [path.read_text() for path in targets] == ["new\n"] * 6
    assert temp_files(tmp_path) == []


def test_a_writer_killed_between_staging_and_renaming_leaves_every_file_new_not_a_mix(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # found dead when told to rename, before this process renamed its own: all written again
    targets = old_files(tmp_path)
    real, calls, others = output.syncfs, [], children()

    def syncfs(directories: object) -> int:
        if not calls:     # the first, between staging and renaming: kill a writer
            child = min(children() - others)   # not another test's child (under xdist)
            os.kill(child, signal.SIGKILL)
            os.waitid(os.P_PID, child, os.WEXITED | os.WNOWAIT)   # dead, reaped by close()
        calls.append(directories)
        return real(directories)  # type: ignore[arg-type]

    monkeypatch.setattr(output, "syncfs", syncfs)
    write_new_with_a_writer_killed(targets)
    assert [path.read_text() for path in targets] == ["new\n"] * 6
    assert temp_files(tmp_path) == []


@pytest.mark.parametrize("jobs_", ["1", "3"])
def test_sigterm_while_writing_is_one_line_and_leaves_no_temp_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        jobs_: str) -> None:
    # SIGTERM's default action ended generate at once: hundreds of .*.tmp files stayed under
    # tars_path (found trying issue 14 as a user; the old one-process writer did the same)
    generated_then_every_config_changed(tmp_path, monkeypatch, capsys)
    before = tree(tmp_path)
    parent, sent = os.getpid(), []

    def staged(file: OutputFile) -> None:
        if os.getpid() == parent and not sent:   # its first file (in shards: of its first chunk)
            sent.append(file.path)
            # to this thread, as test_unfinished's Ctrl-C test does: under pytest-xdist, execnet's
            # own threads take a signal sent to the process while this one holds it, and such a
            # thread may run its C handler only once generate has gone on to the renames, or
            # (one a file, as this test sent) run it again during the clean-up (1 in ~150 runs)
            signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

    def not_generate(signum: int, frame: object) -> None:
        raise AssertionError("SIGTERM reached the handler generate found")

    after_each_stage(monkeypatch, staged)
    handler = signal.signal(signal.SIGTERM, not_generate)   # not pytest's end, if it fails
    try:
        code, _, err = generate(tmp_path, "supervisord", jobs_, monkeypatch, capsys)
        assert signal.getsignal(signal.SIGTERM) == not_generate   # given back
    finally:
        signal.signal(signal.SIGTERM, handler)
    assert (code, err.splitlines()[-1]) == (143, "error: terminated (SIGTERM)")
    assert tree(tmp_path) == before and temp_files(tmp_path) == [] and len(sent) == 1


def again_as_a_temp_file_goes(monkeypatch: pytest.MonkeyPatch, sig: signal.Signals,
                              sent: list[str]) -> None:
    """os.unlink as it is, then, once `sent` holds the first signal, `sig` again to this thread
    as this process removes its first temp file (the clean-up of the interrupted write)."""
    parent, real = os.getpid(), os.unlink

    def unlink(path: str, *args: object, **kwargs: object) -> None:
        real(path, *args, **kwargs)  # type: ignore[arg-type]
        if os.getpid() == parent and len(sent) == 1 and str(path).endswith(".tmp"):
            sent.append(str(path))
            signal.pthread_kill(threading.get_ident(), sig)

    monkeypatch.setattr(os, "unlink", unlink)


INTERRUPTS = [(signal.SIGTERM, 143, "error: terminated (SIGTERM)"),
              (signal.SIGINT, 130, "error: interrupted (Ctrl-C)")]


@pytest.mark.parametrize("jobs_", ["1", "3"])
@pytest.mark.parametrize(("sig", "code", "said"), INTERRUPTS)
def test_a_second_interrupt_while_the_first_cleans_up_leaves_no_temp_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        jobs_: str, sig: signal.Signals, code: int, said: str) -> None:
    # a second SIGTERM (kill twice; systemctl stop then kill) or Ctrl-C (pressed twice) raised
    # again in a `finally` that removes temp files: those after it stayed, and the marker that
    # would have had the next write sweep them was removed all the same (found as the flaky
    # SIGTERM test above, whose process got one SIGTERM a staged file). A new node: this
    # process stages the node's own units (tars.target, ...) with its first chunk, so it has
    # more than one temp file to remove whatever chunks the others take
    node(tmp_path, 11, {})
    before = tree(tmp_path)
    parent, sent, here = os.getpid(), [], []

    def staged(file: OutputFile) -> None:
        if os.getpid() == parent:
            here.append(file.path)
            if not sent:
                sent.append(str(file.path))
                signal.pthread_kill(threading.get_ident(), sig)   # held: see drive

    after_each_stage(monkeypatch, staged)
    again_as_a_temp_file_goes(monkeypatch, sig, sent)
    # Python's own Ctrl-C handler, whatever this process was started with (see test_unfinished)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        result, _, err = generate(tmp_path, "systemd", jobs_, monkeypatch, capsys)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(here) > 1 and len(sent) == 2, (here, sent)
    assert (result, err.splitlines()[-1]) == (code, said), err
    assert tree(tmp_path) == before and temp_files(tmp_path) == []


@pytest.mark.parametrize(("sig", "code", "said"), INTERRUPTS)
def test_a_second_interrupt_while_a_write_in_one_process_cleans_up_leaves_no_temp_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sig: signal.Signals, code: int,
        said: str) -> None:
    # apply's write (tarsdock.output.write in one process, where nothing is held): the first
    # is raised at once, the second as its temp files are removed
    targets = old_files(tmp_path)
    marks = tmp_path / "marks"
    marks.mkdir()
    sent: list[str] = []
    here: list[Path] = []

    def staged(file: OutputFile) -> None:
        here.append(file.path)
        if len(here) == 2:   # raised at once: two temp files to remove
            sent.append(str(file.path))
            signal.pthread_kill(threading.get_ident(), sig)

    after_each_stage(monkeypatch, staged)
    again_as_a_temp_file_goes(monkeypatch, sig, sent)
    changes = [Change("changed", path, OutputFile(path, "new\n")) for path in targets]
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(Terminated if sig == signal.SIGTERM else KeyboardInterrupt):
            output.write(changes, marks=str(marks))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(sent) == 2 and [path.read_text() for path in targets] == ["old\n"] * 6
    assert temp_files(tmp_path) == [] and list(marks.iterdir()) == []


@pytest.mark.parametrize("jobs_", ["1", "3"])
def test_ctrl_c_while_writing_is_one_line_and_exit_130(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], jobs_: str) -> None:
    node(tmp_path, 11, {})
    others = children()

    def stage(file: OutputFile, umask: int, pid: int, staged: list[tuple[str, str]],
              found: dict[str, int]) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(output, "_stage", stage)
    code, _, err = generate(tmp_path, "supervisord", jobs_, monkeypatch, capsys)
    assert (code, err.splitlines()[-1]) == (130, "error: interrupted (Ctrl-C)")
    assert temp_files(tmp_path) == [] and children() == others


# --- generate: one set of workers renders, plans and writes ----------------------------------

def test_generate_forks_once_and_no_file_comes_back(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    node(tmp_path, 11, {})
    alone = generate(tmp_path, "systemd", "1", monkeypatch, capsys)
    files = tree(tmp_path)
    shutil.rmtree(tmp_path / "out")
    shutil.rmtree(tmp_path / "tars")
    forks: list[int] = []
    real = os.fork

    def fork() -> int:
        pid = real()
        if pid:
            forks.append(pid)
        return pid

    def refused(self: OutputFile) -> object:
        raise AssertionError(f"{self.path} sent between processes")

    monkeypatch.setattr(os, "fork", fork)
    monkeypatch.setattr(OutputFile, "__reduce__", refused)   # the workers inherit it
    assert generate(tmp_path, "systemd", "3", monkeypatch, capsys) == alone
    assert len(forks) == 2 and all(gone(pid) for pid in forks)
    assert tree(tmp_path) == files


@pytest.mark.parametrize("command", [["generate"], ["generate", "--dry-run"], ["validate"]])
def test_the_engine_is_asked_while_the_workers_render_and_warns_as_in_one_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        command: list[str]) -> None:
    node(tmp_path, 11, {3: WARNS})
    argv = ["--config-dir", str(tmp_path / "cfg"), *command]
    if command[0] == "generate":
        argv += ["--format", "systemd", "--out", str(tmp_path / "out")]
    asked: list[tuple[int, bool]] = []
    rendering = [False]
    real_first = Lockstep.first

    def first(self: Lockstep, meanwhile: object = None) -> list[object]:
        rendering[0] = True
        try:
            return real_first(self, meanwhile)  # type: ignore[arg-type]
        finally:
            rendering[0] = False

    def engine_warnings(node: object, specs: object = ()) -> list[str]:
        asked.append((os.getpid(), rendering[0]))
        return ["the engine says so"]

    monkeypatch.setattr(generate_module, "engine_warnings", engine_warnings)
    monkeypatch.setenv(JOBS_VARIABLE, "1")
    alone = run(argv, capsys)
    assert alone[0] == 0 and alone[2].endswith("warning: the engine says so\n"), alone
    assert asked == [(os.getpid(), False)]
    shutil.rmtree(tmp_path / "out", ignore_errors=True)
    shutil.rmtree(tmp_path / "tars", ignore_errors=True)
    asked.clear()
    monkeypatch.setattr(Lockstep, "first", first)
    monkeypatch.setenv(JOBS_VARIABLE, "3")
    assert run(argv, capsys) == alone
    assert asked == [(os.getpid(), True)]


def new_tree(root: Path, monkeypatch: pytest.MonkeyPatch,
             capsys: pytest.CaptureFixture[str]) -> dict[str, tuple[int, str]]:
    """A node of 11 services written, then every config changed: the tree a generate of the
    change leaves (made in a copy); the node is left as it was before that generate."""
    node(root, 11, {})
    assert generate(root, "supervisord", "1", monkeypatch, capsys)[0] == 0
    node(root, 11, {i: WARNS for i in range(11)})
    copy = root.parent / f"{root.name}-copy"
    shutil.copytree(root, copy, symlinks=True)
    try:
        assert generate(root, "supervisord", "1", monkeypatch, capsys)[0] == 0
        written = tree(root)
    finally:
        for name in ("out", "tars"):
            shutil.rmtree(root / name)
            shutil.copytree(copy / name, root / name, symlinks=True)
        shutil.rmtree(copy)
    return written


KILLED = r"^error: tarsdock worker process \d+: died \(killed by SIGKILL\)$"


def test_a_worker_killed_while_staging_in_generate_changes_no_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    new_tree(tmp_path, monkeypatch, capsys)
    before = tree(tmp_path)
    parent = os.getpid()

    def staged(file: OutputFile) -> None:
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)   # its first file staged

    after_each_stage(monkeypatch, staged)
    others = children()
    code, _, err = generate(tmp_path, "supervisord", "3", monkeypatch, capsys)
    assert code == 5 and re.match(KILLED, err.splitlines()[-1]), err
    assert tree(tmp_path) == before and temp_files(tmp_path) == []
    assert children() == others


@pytest.mark.parametrize("when", ["renaming", "between staging and renaming"])
def test_a_worker_killed_once_generate_renames_leaves_every_file_new(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        when: str) -> None:
    written = new_tree(tmp_path, monkeypatch, capsys)
    parent, others = os.getpid(), children()
    real_replace, real_syncfs, calls = os.replace, output.syncfs, []

    def replace(source: str, target: str) -> None:
        real_replace(source, target)
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)   # after its first rename (the OOM killer)

    def syncfs(devices: output.Devices) -> int:
        if not calls:     # the first, between staging and renaming: kill a worker
            child = min(children() - others)
            os.kill(child, signal.SIGKILL)
            os.waitid(os.P_PID, child, os.WEXITED | os.WNOWAIT)   # dead, reaped by close()
        calls.append(devices)
        return real_syncfs(devices)

    if when == "renaming":
        monkeypatch.setattr(os, "replace", replace)
    else:
        monkeypatch.setattr(output, "syncfs", syncfs)
    code, _, err = generate(tmp_path, "supervisord", "3", monkeypatch, capsys)
    assert code == 5 and re.match(KILLED, err.splitlines()[-1]), err
    assert tree(tmp_path) == written and temp_files(tmp_path) == []
    assert children() == others


def test_a_rename_failing_in_a_worker_is_done_again_in_one_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # the files were rendered in the workers: this process renders them again to write them
    written = new_tree(tmp_path, monkeypatch, capsys)
    parent, real = os.getpid(), os.replace

    def replace(source: str, target: str) -> None:
        if os.getpid() != parent:
            raise OSError(errno.EIO, "Input/output error", target)
        real(source, target)

    monkeypatch.setattr(os, "replace", replace)
    code, out, _ = generate(tmp_path, "supervisord", "3", monkeypatch, capsys)
    assert (code, out) == (0, "11 written, 23 unchanged, 0 removed\n")
    assert tree(tmp_path) == written and temp_files(tmp_path) == []


def test_generate_writes_its_stamp_while_the_workers_leave_and_reaps_them_before_it_returns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    node(tmp_path, 11, {})
    others, real, seen = children(), stamp.record, []

    def record(*args: object, **kwargs: object) -> bool:
        seen.append(children() - others)    # a worker that has left stays a child till reaped
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(stamp, "record", record)
    code, out, _ = generate(tmp_path, "systemd", "3", monkeypatch, capsys)
    assert (code, out) == (0, "29 written, 0 unchanged, 0 removed\n")
    assert [len(workers) for workers in seen] == [2] and children() == others


@pytest.mark.parametrize(("fault", "code", "line"), [
    (OSError(errno.EIO, "Input/output error", "stamp"), 5, "error: stamp: Input/output error"),
    (KeyboardInterrupt(), 130, "error: interrupted (Ctrl-C)")])
def test_a_stamp_write_that_fails_leaves_no_worker(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        fault: BaseException, code: int, line: str) -> None:
    node(tmp_path, 11, {})
    others = children()

    def record(*args: object, **kwargs: object) -> bool:
        raise fault

    monkeypatch.setattr(stamp, "record", record)
    exit_code, _, err = generate(tmp_path, "systemd", "3", monkeypatch, capsys)
    assert (exit_code, err.splitlines()[-1]) == (code, line)
    assert children() == others


def test_a_rewrite_of_every_file_makes_no_dir_that_exists_and_one_removed_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    written = new_tree(tmp_path, monkeypatch, capsys)
    gone_dir = sorted((tmp_path / "tars").rglob("bin"))[0]
    gone_dir.rmdir()
    refused, real = [], os.mkdir

    def mkdir(path: str, mode: int = 0o777) -> None:
        try:
            real(path, mode)
        except FileExistsError:
            refused.append(path)
            raise

    monkeypatch.setattr(os, "mkdir", mkdir)
    code, out, _ = generate(tmp_path, "supervisord", "1", monkeypatch, capsys)
    assert (code, out) == (0, "11 written, 23 unchanged, 0 removed\n")
    assert refused == [] and tree(tmp_path) == written


@pytest.mark.parametrize("fmt", ["systemd", "supervisord"])
def test_a_new_node_is_planned_with_no_open_of_a_file_to_write(
        tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # one process (no fork: every open is seen here), a service added to a node written before
    # (its unit's open finds it missing; its config's dir is missing from the data dir's
    # listing), then the serial road's plan_all of a new node (its first file opened)
    node(tmp_path, 11, {})
    assert generate(tmp_path, fmt, "1", monkeypatch, capsys)[0] == 0
    node(tmp_path, 12, {})
    read, real = [], os.open

    def traced(path: str, flags: int, *args: int, **kwargs: int) -> int:
        if not flags & os.O_WRONLY:
            read.append(os.fspath(path))
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", traced)
    code = generate(tmp_path, fmt, "1", monkeypatch, capsys)[0]
    new = {os.fspath(p) for p in tmp_path.rglob("*App.S11*") if p.is_file()}
    assert code == 0 and len(new) == 2 + (fmt == "supervisord") and len(new & set(read)) == 1
    assert {os.fspath(p) for p in tmp_path.rglob("*App.S10*") if p.is_file()} <= set(read)
    shutil.rmtree(tmp_path / "out")
    shutil.rmtree(tmp_path / "tars")
    ctx = Context(tmp_path / "cfg", "/usr/bin")
    done = load_and_render_all((fmt,), tmp_path / "cfg", ctx, tmp_path / "out")
    read.clear()
    changes = generate_module.plan_all(fmt, done.files[fmt], tmp_path / "out", None,
                                       done.manifest.node.data_dir)
    assert {c.kind for c in changes} == {"new"} and read == [os.fspath(changes[0].path)]


@pytest.mark.parametrize("show", [(), ("--dry-run",)])
def test_syncfs_is_loaded_before_this_process_takes_a_chunk_unless_nothing_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        show: tuple[str, ...]) -> None:
    # imported in the render step, whose chunks the other processes share meanwhile, not at
    # the syncfs, where every process waits for this one
    import builtins

    node(tmp_path, 11, {})
    parent, events = os.getpid(), []
    real_import, real_render = builtins.__import__, generate_module.render_part

    def imports(name: str, *args: object, **kwargs: object) -> object:
        if name == "ctypes" and os.getpid() == parent:
            events.append("import ctypes")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    def render_part(*args: object, **kwargs: object) -> object:
        if os.getpid() == parent:
            events.append("render")
        return real_render(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", imports)
    monkeypatch.setattr(generate_module, "render_part", render_part)
    assert generate(tmp_path, "systemd", "2", monkeypatch, capsys, *show)[0] == 0
    # (ctypes' own modules import it again, as it loads)
    assert set(events[:events.index("render")]) == (set() if show else {"import ctypes"})
