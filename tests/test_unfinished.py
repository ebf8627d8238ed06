"""A write killed outright (SIGKILL of its whole process group: the OOM killer, a power cut)
leaves temp files that the next write of the node sweeps, through the marker of an unfinished
write (tarsdock.unfinished); a write that fails removes the empty dirs it made."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_apply import control, run_apply, write_node  # noqa: F401 - control: a fixture
from test_generator import config, run_generator
from test_shards import (
    INTERRUPTS,
    WARNS,
    after_each_stage,
    again_as_a_temp_file_goes,
    generate,
    node,
    temp_files,
    tree,
)

from tarsdock import apply, output, unfinished
from tarsdock.cli import main
from tarsdock.output import Change, OutputFile
from tarsdock.shards import JOBS_VARIABLE
from tarsdock.unfinished import Unfinished

PR_SET_CHILD_SUBREAPER = 36


def marks(root: Path) -> Path:
    return root / "tars" / "tarsdock"


def markers(root: Path) -> list[str]:
    return unfinished.markers(str(marks(root)))


def killed_whole(monkeypatch: pytest.MonkeyPatch, at: Callable[[OutputFile], bool],
                 run: Callable[[], object]) -> None:
    """run() in a process group of its own, SIGKILLed as a whole (every process of it, no
    `finally` anywhere) once a file `at` picks is staged, by whichever process stages it. A
    go-between process, the group's subreaper, reaps every process of the group before this
    returns: none of them is left to act after."""
    def staged(file: OutputFile) -> None:
        if at(file):
            os.killpg(0, signal.SIGKILL)

    real = output._stage
    after_each_stage(monkeypatch, staged)
    between = os.fork()
    if between == 0:
        code = 1
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1)
            writer = os.fork()
            if writer == 0:
                try:
                    os.setpgid(0, 0)
                    null = os.open(os.devnull, os.O_WRONLY)
                    os.dup2(null, 1)
                    os.dup2(null, 2)
                    run()
                finally:
                    os._exit(0)     # not killed: the go-between says so
            killed = False
            while True:             # the writer, then its workers once orphaned
                try:
                    pid, status = os.waitpid(-1, 0)
                except ChildProcessError:
                    break
                if pid == writer:
                    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
            code = 0 if killed else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(between, 0)
    monkeypatch.setattr(output, "_stage", real)
    assert os.waitstatus_to_exitcode(status) == 0, "the writer was not killed while writing"


def config_of(name: str) -> Callable[[OutputFile], bool]:
    return lambda file: file.path.name == f"{name}.config.conf"


@pytest.mark.parametrize("jobs_", ["1", "3"])
@pytest.mark.parametrize("then", ["the same change", "the change undone"])
def test_a_generate_killed_whole_while_staging_leaves_temp_files_the_next_one_sweeps(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        jobs_: str, then: str) -> None:
    node(tmp_path, 11, {})
    assert generate(tmp_path, "supervisord", "1", monkeypatch, capsys)[0] == 0
    old = tree(tmp_path)
    node(tmp_path, 11, {i: WARNS for i in range(11)})
    monkeypatch.setenv(JOBS_VARIABLE, jobs_)
    argv = ["--config-dir", str(tmp_path / "cfg"), "generate", "--format", "supervisord",
            "--out", str(tmp_path / "out")]
    killed_whole(monkeypatch, config_of("App.S07"), lambda: main(argv))
    left = temp_files(tmp_path)
    conf = tmp_path / "tars/tarsnode/data/App.S07/conf"
    assert [path for path in left if path.parent == conf], left     # in a conf dir
    assert len(markers(tmp_path)) == 1
    if then == "the change undone":    # nothing to write: the sweep is all the run does
        node(tmp_path, 11, {})
    code, out, _ = generate(tmp_path, "supervisord", jobs_, monkeypatch, capsys)
    assert code == 0, out
    assert temp_files(tmp_path) == [] and markers(tmp_path) == []
    if then == "the change undone":
        assert out.startswith("0 written, ") and tree(tmp_path) == old
    else:
        assert out.startswith("11 written, ")
        assert all("hearttimeout=5000" in path.read_text()
                   for path in (tmp_path / "tars/tarsnode/data").glob("*/conf/*.conf"))


def test_the_marker_is_durable_before_the_first_temp_file_and_names_every_pid_and_dir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
        ) -> None:
    node(tmp_path, 11, {})
    assert generate(tmp_path, "supervisord", "1", monkeypatch, capsys)[0] == 0
    node(tmp_path, 11, {i: WARNS for i in range(11)})
    fsynced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        fsynced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    seen: list[tuple[int, list[str], list[int], list[str]]] = []
    parent = os.getpid()

    def staged(file: OutputFile) -> None:
        if os.getpid() == parent and not seen:
            found = markers(tmp_path)
            data = json.loads(Path(found[0]).read_text()) if found else {"pids": [], "dirs": []}
            seen.append((len(found), list(fsynced), data["pids"], data["dirs"]))

    monkeypatch.setattr(os, "fsync", fsync)
    after_each_stage(monkeypatch, staged)
    pids: list[int] = []
    real_mark = Unfinished.mark

    def mark(self: Unfinished, given: list[int], dirs: set[str]) -> None:
        pids.extend(given)
        real_mark(self, given, dirs)

    monkeypatch.setattr(Unfinished, "mark", mark)
    assert generate(tmp_path, "supervisord", "3", monkeypatch, capsys)[0] == 0
    ((count, synced, named, dirs),) = seen
    assert count == 1
    # the marker's data, then its directory's entry, made durable before the first temp file
    assert synced[-2:] == [str(marks(tmp_path) / f"writing-{parent}-0.json"),
                           str(marks(tmp_path))]
    assert len(set(pids)) == 3 and set(named) == set(pids) and parent in named
    data = tmp_path / "tars/tarsnode/data"
    assert set(dirs) == {str(data / f"App.S{i:02}" / "conf") for i in range(11)}
    assert markers(tmp_path) == []      # removed once the write is over


def test_an_unchanged_run_makes_no_marker_and_touches_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
        ) -> None:
    node(tmp_path, 11, {})
    assert generate(tmp_path, "systemd", "1", monkeypatch, capsys)[0] == 0
    made: list[object] = []
    monkeypatch.setattr(unfinished, "_write_marker", lambda *a: made.append(a))
    place = marks(tmp_path)
    before = place.stat().st_mtime_ns, sorted(os.listdir(place))
    monkeypatch.setenv("TARSDOCK_CACHE_DIR", str(tmp_path / "no-stamp"))   # a full run
    code, out, _ = generate(tmp_path, "systemd", "1", monkeypatch, capsys)
    assert (code, out.split(",")[0]) == (0, "0 written")
    assert made == [] and (place.stat().st_mtime_ns, sorted(os.listdir(place))) == before


def dead_marker(place: Path, pids: list[int], dirs: list[Path]) -> Path:
    place.mkdir(parents=True, exist_ok=True)
    path = place / "writing-1-0.json"
    path.write_text(json.dumps({"pids": pids, "dirs": [str(d) for d in dirs]}))
    return path


def test_a_sweep_removes_only_the_temp_names_of_the_markers_pids_in_its_dirs(
        tmp_path: Path) -> None:
    a, b, other = tmp_path / "a", tmp_path / "b", tmp_path / "other"
    for directory in (a, b, other):
        directory.mkdir()
    left = [a / ".x.conf.4001.tmp", b / ".y.service.4002.tmp"]
    kept = [a / ".x.conf.4003.tmp", a / "x.conf", a / ".x.conf.4001.tmp.keep",
            other / ".z.conf.4001.tmp", a / ".x.conf.4001a.tmp"]
    for path in [*left, *kept]:
        path.write_text("staged")
    marker = dead_marker(tmp_path / "marks", [4001, 4002], [a, b, tmp_path / "gone"])
    assert unfinished.sweep(str(tmp_path / "marks")) == 2
    assert not any(path.exists() for path in left) and all(path.exists() for path in kept)
    assert not marker.exists()


def test_a_torn_marker_is_removed_with_nothing_else(tmp_path: Path) -> None:
    place = tmp_path / "marks"
    place.mkdir()
    (place / "writing-7-0.json").write_text('{"pids": [7], "di')   # its writer died writing it
    (tmp_path / ".f.7.tmp").write_text("not of that marker")
    assert unfinished.sweep(str(place)) == 0
    assert os.listdir(place) == [] and (tmp_path / ".f.7.tmp").exists()


@pytest.mark.parametrize("text", [
    "[" * 100_000,                                     # json.loads: RecursionError
    '{"pids": [7], "dirs": ["a\\u0000b"]}',           # os.listdir: ValueError (a NUL byte)
])
def test_a_marker_no_writer_could_have_written_is_removed_with_nothing_else(
        tmp_path: Path, text: str) -> None:
    # no write makes these (a path holds no NUL byte); a hand-made or damaged one must not
    # stop every later write of the node with a traceback (found by the tryout)
    place = tmp_path / "marks"
    place.mkdir()
    (place / "writing-7-0.json").write_text(text)
    (tmp_path / ".f.7.tmp").write_text("not of that marker")
    assert unfinished.sweep(str(place)) == 0
    assert os.listdir(place) == [] and (tmp_path / ".f.7.tmp").exists()


def test_a_marker_whose_dir_cannot_be_listed_stays_for_a_later_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = tmp_path / "a"
    a.mkdir()
    (a / ".f.9.tmp").write_text("staged")
    marker = dead_marker(tmp_path / "marks", [9], [a])
    real = os.listdir

    def listdir(path: str) -> list[str]:
        if path == str(a):
            raise PermissionError(13, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(os, "listdir", listdir)
    assert unfinished.sweep(str(tmp_path / "marks")) == 0
    assert marker.exists()
    monkeypatch.setattr(os, "listdir", real)
    assert unfinished.sweep(str(tmp_path / "marks")) == 1 and not marker.exists()


@contextmanager
def another_write_under_way(place: Path) -> Iterator[None]:
    """What another write of the node holds while it writes: the node's dir, locked shared."""
    fd = os.open(place, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def test_no_sweep_while_another_write_of_the_node_is_under_way_and_both_write(
        tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    leftover = conf / ".a.conf.4242.tmp"
    leftover.write_text("staged")
    marker = dead_marker(tmp_path / "marks", [4242], [conf])
    target = conf / "a.conf"
    with another_write_under_way(tmp_path / "marks"):
        output.write([Change("new", target, OutputFile(target, "new\n"))],
                     marks=str(tmp_path / "marks"))
        # it may be that write's own marker: left alone, and this write went on
        assert leftover.exists() and marker.exists() and target.read_text() == "new\n"
    output.write([], marks=str(tmp_path / "marks"))   # nothing to write: the sweep alone
    assert not leftover.exists() and not marker.exists()
    assert os.listdir(tmp_path / "marks") == []


def test_two_writes_at_once_each_keep_their_marker_and_sweep_none_of_the_others_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    place, conf = tmp_path / "marks", tmp_path / "conf"
    first, second = conf / "a.conf", conf / "b.conf"
    inner: list[list[str]] = []

    def staged(file: OutputFile) -> None:
        if file.path == first and not inner:     # the first write is between stage and rename
            output.write([Change("new", second, OutputFile(second, "b\n"))], marks=str(place))
            inner.append(sorted(os.listdir(conf)))

    after_each_stage(monkeypatch, staged)
    output.write([Change("new", first, OutputFile(first, "a\n"))], marks=str(place))
    assert inner == [[f".a.conf.{os.getpid()}.tmp", "b.conf"]]
    assert sorted(os.listdir(conf)) == ["a.conf", "b.conf"] and os.listdir(place) == []


def test_a_marker_that_cannot_be_made_lets_the_write_go_on_as_before(tmp_path: Path) -> None:
    place = tmp_path / "marks"
    place.write_text("a file in the way")
    target = tmp_path / "conf" / "a.conf"
    output.write([Change("new", target, OutputFile(target, "a\n"))], dirs=[tmp_path / "d"],
                 marks=str(place))
    assert target.read_text() == "a\n" and (tmp_path / "d").is_dir()


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, output.Terminated])
def test_an_interrupt_as_the_markers_name_is_made_durable_leaves_no_marker(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interrupt: type[BaseException]) -> None:
    # a SIGTERM or Ctrl-C raised as the node dir's fsync returns (the marker made, not yet
    # known) left the marker behind (the tester's walk-through: 1 in ~250 generates interrupted
    # twice at 0.3 s)
    place = tmp_path / "marks"
    place.mkdir()
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        real_fsync(fd)
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            raise interrupt
    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(interrupt), Unfinished(str(place)) as marks:
        marks.mark([os.getpid()], [str(tmp_path / "conf")])
    assert os.listdir(place) == []


def test_a_second_marker_replaces_the_first_even_when_interrupted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    place = tmp_path / "marks"
    place.mkdir()
    real_fsync = os.fsync
    calls: list[int] = []

    def fsync(fd: int) -> None:
        real_fsync(fd)
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            calls.append(fd)
            if len(calls) == 2:
                raise KeyboardInterrupt
    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(KeyboardInterrupt), Unfinished(str(place)) as marks:
        marks.mark([os.getpid()], [str(tmp_path / "a")])
        assert len(os.listdir(place)) == 1
        marks.mark([os.getpid()], [str(tmp_path / "b")])
    assert os.listdir(place) == []


# --- a failed write removes the empty dirs it made -------------------------------------------

@pytest.mark.parametrize("jobs_", [1, 3])
@pytest.mark.parametrize("fault", ["a mkdir", "a stage"])
def test_a_failed_write_removes_the_empty_dirs_it_made_and_no_other(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs_: int, fault: str) -> None:
    root = tmp_path / "root"
    (root / "old" / "kept").mkdir(parents=True)
    (root / "old" / "full").mkdir()
    (root / "old" / "full" / "f").write_text("there before\n")
    (root / "in").mkdir()
    (root / "in" / "way").write_text("a file where a dir must be\n")
    files = [root / "old" / "kept" / "a.conf", root / "new" / "y" / "z" / "b.conf",
             root / "new2" / "c.conf", root / "new3" / "d.conf", root / "new4" / "e.conf",
             root / "old" / "full" / "g.conf"]
    if fault == "a mkdir":
        files.insert(3, root / "in" / "way" / "h.conf")
    else:
        def full(file: OutputFile) -> None:
            if file.path.name == "d.conf":
                raise OSError(errno.ENOSPC, "No space left on device")

        after_each_stage(monkeypatch, full)
    before = tree(tmp_path)
    changes = [Change("new", path, OutputFile(path, "x\n")) for path in files]
    with pytest.raises(OSError, match="File exists" if fault == "a mkdir" else "No space"):
        output.write(changes, dirs=[root / "old" / "kept" / "data", root / "made" / "deep"],
                     jobs=jobs_, marks=str(tmp_path / "marks"))
    # the dirs it made gone, deepest first (its marks dir too); those it found there stay
    assert tree(tmp_path) == before and temp_files(tmp_path) == []


def test_a_failed_write_keeps_the_dirs_it_made_while_another_write_is_under_way(
        tmp_path: Path) -> None:
    (tmp_path / "marks").mkdir()
    (tmp_path / "way").write_text("a file where a dir must be\n")
    target = tmp_path / "way" / "f.conf"
    with another_write_under_way(tmp_path / "marks"), pytest.raises(FileExistsError):
        output.write([Change("new", target, OutputFile(target, "x\n"))],
                     dirs=[tmp_path / "made"], marks=str(tmp_path / "marks"))
    assert (tmp_path / "made").is_dir()      # it may be the other write's, about to be used


def test_a_write_that_failed_once_renaming_keeps_the_dirs_its_files_need(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "svc" / "conf" / "a.conf"
    real = output.finish

    def finish(stale: object, touched: object) -> None:
        raise OSError(5, "Input/output error")   # the last syncfs: the files are new

    monkeypatch.setattr(output, "finish", finish)
    with pytest.raises(OSError, match="Input/output"):
        output.write([Change("new", target, OutputFile(target, "a\n"))],
                     dirs=[tmp_path / "svc" / "data"], marks=str(tmp_path / "marks"))
    monkeypatch.setattr(output, "finish", real)
    assert target.read_text() == "a\n" and (tmp_path / "svc" / "data").is_dir()


def test_a_generate_that_fails_leaves_no_dir_it_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
        ) -> None:
    # a new node whose App.S05 log dir cannot be made (a file in its place: tryout14c D2)
    node(tmp_path, 11, {})
    blocker = tmp_path / "tars/app_log/App/S05"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("in the way\n")
    before = tree(tmp_path)
    for jobs_ in ("1", "3"):
        code, _, err = generate(tmp_path, "systemd", jobs_, monkeypatch, capsys)
        assert (code, err.splitlines()[-1]) == (5, f"error: {blocker}: File exists"), err
        assert tree(tmp_path) == before and temp_files(tmp_path) == []


@pytest.mark.parametrize(("sig", "code", "said"), [
    (signal.SIGINT, 130, "error: interrupted (Ctrl-C)"),
    (signal.SIGTERM, 143, None)])
def test_a_generate_interrupted_while_staging_leaves_no_dir_it_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        sig: signal.Signals, code: int, said: str | None) -> None:
    # Ctrl-C or SIGTERM in this process while it stages its own share, the others staging
    # theirs (the tester's D2 at 1ed4081: 1,136-4,719 empty dirs left on a new node)
    node(tmp_path, 11, {})
    before = tree(tmp_path)
    here = os.getpid()
    sent: list[str] = []

    def interrupt(file: OutputFile) -> None:
        if os.getpid() == here and not sent:
            sent.append(file.path.name)
            # to this thread: a process-directed signal may go to any thread of pytest's
            signal.pthread_kill(threading.get_ident(), sig)

    after_each_stage(monkeypatch, interrupt)
    # Python's own Ctrl-C handler, whatever this process was started with: a shell starts a
    # background job (CI runs the unit tests beside the e2e ones) with SIGINT ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for jobs_ in ("1", "3"):
            sent.clear()
            result, _, err = generate(tmp_path, "systemd", jobs_, monkeypatch, capsys)
            assert sent and result == code, err
            assert said is None or err.splitlines()[-1] == said, err
            assert tree(tmp_path) == before and temp_files(tmp_path) == []
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("jobs_", ["1", "3"])
def test_a_sigterm_another_thread_takes_is_held_all_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        jobs_: str) -> None:
    # a signal sent to the process while this thread blocks it goes to another thread that does
    # not (signal(7)), whose C handler has CPython run the Python one in this thread at its next
    # instruction: with the hold a thread's mask (pthread_sigmask), Terminated came in the middle
    # of this process's staging and the dirs it had made stayed (as in a pytest-xdist worker,
    # whose execnet threads took test_shards' SIGTERMs). Here the other thread is sent it itself
    node(tmp_path, 11, {})
    before = tree(tmp_path)
    here, sent = os.getpid(), []
    idle = threading.Event()
    other = threading.Thread(target=idle.wait, daemon=True)
    woken, wake = os.pipe()
    os.set_blocking(wake, False)

    def interrupt(file: OutputFile) -> None:
        if os.getpid() == here and not sent:
            sent.append(file.path.name)
            signal.pthread_kill(other.ident or 0, signal.SIGTERM)
            os.read(woken, 1)   # its C handler has run there: the Python one runs here now

    after_each_stage(monkeypatch, interrupt)
    other.start()
    previous = signal.set_wakeup_fd(wake, warn_on_full_buffer=False)
    try:
        code, _, err = generate(tmp_path, "systemd", jobs_, monkeypatch, capsys)
    finally:
        signal.set_wakeup_fd(previous)
        idle.set()
        other.join()
        os.close(woken)
        os.close(wake)
    assert sent and (code, err.splitlines()[-1]) == (143, "error: terminated (SIGTERM)"), err
    assert tree(tmp_path) == before and temp_files(tmp_path) == []


# --- apply and the systemd generator write through the same marker ---------------------------

@pytest.mark.parametrize("at", ["App.Two.config.conf", apply.PENDING_FILE])
def test_an_apply_killed_whole_while_writing_is_swept_by_the_next(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, control: object,  # noqa: F811
        at: str) -> None:
    cfg = write_node(tmp_path, ["One", "Two"])
    assert run_apply(cfg)[0] == 0
    new_locator(cfg)      # every service's config changes
    killed_whole(monkeypatch, lambda file: file.path.name == at, lambda: run_apply(cfg))
    assert [path.name for path in temp_files(tmp_path) if path.name.startswith(f".{at}.")]
    assert len(markers(tmp_path)) == 1
    code, report = run_apply(cfg)
    assert code == 0 and report["changed"] is True
    assert temp_files(tmp_path) == [] and markers(tmp_path) == []


@pytest.mark.parametrize(("sig", "code", "said"), INTERRUPTS)
def test_an_apply_interrupted_twice_while_writing_leaves_no_temp_file_and_the_next_finishes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        control: object, sig: signal.Signals, code: int, said: str) -> None:  # noqa: F811
    # apply writes in one process (output.write), where nothing is held: the first interrupt
    # is raised at once, the second (kill twice, Ctrl-C twice) came as its temp files went
    cfg = write_node(tmp_path, ["One", "Two"])
    assert run_apply(cfg)[0] == 0
    new_locator(cfg)      # every service's config changes
    configs = sorted(tmp_path.rglob("App.*.config.conf"))
    old = [path.read_text() for path in configs]
    sent: list[str] = []
    here: list[Path] = []

    def staged(file: OutputFile) -> None:
        if file.path.name.endswith(".config.conf"):
            here.append(file.path)
            if len(here) == 2:   # two temp files to remove
                sent.append(str(file.path))
                signal.pthread_kill(threading.get_ident(), sig)

    after_each_stage(monkeypatch, staged)
    again_as_a_temp_file_goes(monkeypatch, sig, sent)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        result = main(["--config-dir", str(cfg), "apply", "--json"])
    finally:
        signal.signal(signal.SIGINT, previous)
    err = capsys.readouterr().err
    assert len(sent) == 2 and (result, err.splitlines()[-1]) == (code, said), err
    assert [path.read_text() for path in configs] == old
    assert temp_files(tmp_path) == [] and markers(tmp_path) == []
    result, report = run_apply(cfg)     # the next apply writes them (the hooks sent theirs)
    assert result == 0 and report["changed"] is True
    assert all("-p 17891" in path.read_text() for path in configs)


def test_a_generator_killed_whole_while_writing_configs_is_swept_by_the_next(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config(tmp_path, {"One": 1, "Two": 2})
    run_generator(tmp_path, cfg, monkeypatch)
    new_locator(cfg)      # every service's config changes
    killed_whole(monkeypatch, lambda file: file.path.name == "App.Two.config.conf",
                 lambda: run_generator(tmp_path, cfg, monkeypatch))
    data = tmp_path / "tars/tarsnode/data"
    conf = data / "App.Two/conf"
    assert {path.parent for path in temp_files(tmp_path)} == {data / "App.One/conf", conf}
    assert len(markers(tmp_path)) == 1
    run_generator(tmp_path, cfg, monkeypatch)
    assert temp_files(tmp_path) == [] and markers(tmp_path) == []
    assert "-p 17891" in (conf / "App.Two.config.conf").read_text()


def new_locator(cfg: Path) -> None:
    toml = cfg / "node.toml"
    toml.write_text(toml.read_text().replace("-p 17890", "-p 17891"))
