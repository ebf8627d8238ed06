"""Unit tests for tarsdock deploy (package checks, atomic swap, rollback) and package facts."""

from __future__ import annotations

import errno
import io
import json
import os
import posixpath
import re
import stat
import subprocess
import tarfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tarsdock import deploy as dp
from tarsdock.cli import main
from tarsdock.errors import EnvironmentFault, InputError, Origin, TarsdockError
from tarsdock.model import PackageFacts
from tarsdock.package import read_package_facts

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
# (kind, name, content or link target); kind: file dir exe sym lnk chr fifo
Member = tuple[str, str, str]


def make_tgz(path: Path, members: Sequence[Member]) -> Path:
    """Write a gzipped tar with exactly these members, in this order."""
    with tarfile.open(path, "w:gz") as tar:
        for kind, name, payload in members:
            info = tarfile.TarInfo(name)
            data = None
            if kind in ("file", "exe"):
                data = payload.encode()
                info.size = len(data)
                info.mode = 0o755 if kind == "exe" else 0o644
            elif kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind in ("sym", "lnk"):
                info.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
                info.linkname = payload
            else:
                info.type = tarfile.CHRTYPE if kind == "chr" else tarfile.FIFOTYPE
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def release(tmp_path: Path, name: str, version: str, server: str = "HelloServer") -> Path:
    """A well-formed package whose files say which version they are."""
    return make_tgz(tmp_path / name, [
        ("dir", f"{server}/", ""),
        ("exe", f"{server}/{server}", f"#!/bin/sh\necho {version}\n"),
        ("file", f"{server}/VERSION", version),
        ("dir", f"{server}/lib", ""),
        ("sym", f"{server}/lib/current", "../VERSION"),
    ])


@pytest.fixture
def dirs(tmp_path: Path) -> dp.ReleaseDirs:
    return dp.ReleaseDirs(tmp_path / "data" / "Hello.HelloServer")


def deploy(package: Path, dirs: dp.ReleaseDirs, now: datetime = NOW,
           server_type: str = "tars_cpp") -> tuple[str, str | None]:
    return dp.deploy(package, dirs, "HelloServer", server_type, now)


def snapshot(dirs: dp.ReleaseDirs) -> tuple[str, str | None, list[str], str]:
    """What a start would see: bin's target, bin.previous's target, releases, bin's VERSION."""
    previous = os.readlink(dirs.previous) if dirs.previous.is_symlink() else None
    return (os.readlink(dirs.bin), previous, sorted(p.name for p in dirs.releases.iterdir()),
            (dirs.bin / "VERSION").read_text())


# --- refusing unsafe packages ---------------------------------------------------------------------

UNSAFE: list[tuple[list[Member], str]] = [
    ([("file", "../evil", "x")], "'../evil' has '..'"),
    ([("file", "/etc/x", "x")], "'/etc/x' has an absolute path"),
    ([("dir", "HelloServer/", ""), ("file", "HelloServer/../../evil", "x")],
     "'HelloServer/../../evil' has '..'"),
    ([("sym", "HelloServer/passwd", "/etc/passwd")],
     "'HelloServer/passwd' is a symlink to the absolute path '/etc/passwd'"),
    ([("sym", "HelloServer/up", "../../conf")], "'HelloServer/up' is a symlink to '../../conf'"),
    ([("sym", "HelloServer/a/b/c", "../../../x")], "'HelloServer/a/b/c' is a symlink"),
    ([("file", "HelloServer/x", "x"), ("lnk", "HelloServer/hard", "Other/x")],
     "'HelloServer/hard' is a hard link to 'Other/x'"),
    ([("chr", "HelloServer/null", "")], "'HelloServer/null' is a device, fifo"),
    ([("fifo", "HelloServer/pipe", "")], "'HelloServer/pipe' is a device, fifo"),
    ([("file", "HelloServer/ok", "x"), ("file", "Other/x", "x")],
     "'Other/x' is outside the top directory 'HelloServer/'"),
    ([("file", "HelloServer", "x")], "'HelloServer' replaces the release directory"),
    ([("file", "hello.txt", "x")], "'hello.txt' is outside the top directory"),
]


@pytest.mark.parametrize(("members", "message"), UNSAFE)
def test_unsafe_package_is_refused_and_current_release_kept(
    tmp_path: Path, dirs: dp.ReleaseDirs, members: list[Member], message: str
) -> None:
    deploy(release(tmp_path, "v1.tgz", "v1"), dirs)
    before = snapshot(dirs)
    bad = make_tgz(tmp_path / "bad.tgz", members)
    with pytest.raises(InputError) as caught:
        deploy(bad, dirs, NOW + timedelta(seconds=1))
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"{bad}: member ")
    assert snapshot(dirs) == before
    assert not (dirs.service_dir / "evil").exists()


def test_package_without_the_server_directory_is_refused(tmp_path: Path,
                                                         dirs: dp.ReleaseDirs) -> None:
    empty = make_tgz(tmp_path / "empty.tgz", [])
    with pytest.raises(InputError, match="no top directory 'HelloServer/'"):
        deploy(empty, dirs)
    assert not dirs.bin.exists()


def test_not_a_tarball_is_an_input_error(tmp_path: Path, dirs: dp.ReleaseDirs) -> None:
    junk = tmp_path / "junk.tgz"
    junk.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(InputError, match="not a readable tgz package"):
        deploy(junk, dirs)
    # one line, not tarfile's list of every method it tried ("- method gz: ReadError(...)")
    text = tmp_path / "text.tgz"
    text.write_text("not a package\n")
    with pytest.raises(InputError) as caught:
        deploy(text, dirs)
    assert str(caught.value) == (f"{text}: not a readable tgz package: neither a tar archive "
                                 "nor one compressed with gzip, bzip2 or xz")
    with pytest.raises(InputError, match="no such package file"):
        deploy(tmp_path / "missing.tgz", dirs)


def test_tars_java_packages_are_refused(tmp_path: Path, dirs: dp.ReleaseDirs) -> None:
    with pytest.raises(TarsdockError, match="tars_java"):
        deploy(release(tmp_path, "v1.tgz", "v1"), dirs, server_type="tars_java")


NAME_PARTS = st.sampled_from(["..", ".", "", "HelloServer", "a", "/"])


@given(st.lists(NAME_PARTS, min_size=1, max_size=6),
       st.lists(NAME_PARTS, min_size=1, max_size=6), st.booleans())
def test_any_accepted_member_stays_inside_the_release(
    name_parts: list[str], link_parts: list[str], is_link: bool
) -> None:
    name = "/".join(name_parts)
    info = tarfile.TarInfo(name)
    if is_link:
        info.type, info.linkname = tarfile.SYMTYPE, "/".join(link_parts)
    else:
        info.type = tarfile.DIRTYPE
    root = ("HelloServer",)
    try:
        dp.check_members([tarfile.TarInfo("HelloServer"), info], root, Origin("p.tgz"))
    except InputError:
        return
    base = "/srv/x"
    where = posixpath.normpath(posixpath.join(base, name))
    assert where == base or where.startswith(base + "/")
    if is_link:
        target = posixpath.normpath(posixpath.join(posixpath.dirname(where), info.linkname))
        assert target.startswith(f"{base}/HelloServer") and not info.linkname.startswith("/")


# --- unpacking and the atomic swap ----------------------------------------------------------------


def test_deploy_unpacks_the_server_directory_into_bin(tmp_path: Path,
                                                      dirs: dp.ReleaseDirs) -> None:
    new, previous = deploy(release(tmp_path, "v1.tgz", "v1"), dirs)
    assert previous is None
    assert os.readlink(dirs.bin) == f"releases/{new}"
    assert new.startswith("20260102T030405Z-")
    assert (dirs.bin / "VERSION").read_text() == "v1"
    assert (dirs.bin / "lib" / "current").read_text() == "v1"
    assert os.stat(dirs.bin / "HelloServer").st_mode & stat.S_IXUSR
    assert not any(p.name.startswith(dp.UNPACK_PREFIX) for p in dirs.releases.iterdir())


def test_second_deploy_keeps_the_previous_release_and_prunes_older(
    tmp_path: Path, dirs: dp.ReleaseDirs
) -> None:
    v1, _ = deploy(release(tmp_path, "v1.tgz", "v1"), dirs)
    v2, prev = deploy(release(tmp_path, "v2.tgz", "v2"), dirs, NOW + timedelta(seconds=1))
    assert prev == v1
    assert snapshot(dirs) == (f"releases/{v2}", f"releases/{v1}", sorted([v1, v2]), "v2")
    v3, _ = deploy(release(tmp_path, "v3.tgz", "v3"), dirs, NOW + timedelta(seconds=2))
    assert snapshot(dirs) == (f"releases/{v3}", f"releases/{v2}", sorted([v2, v3]), "v3")


def test_same_package_twice_in_one_second_gets_two_ids(tmp_path: Path,
                                                       dirs: dp.ReleaseDirs) -> None:
    package = release(tmp_path, "v1.tgz", "v1")
    first, _ = deploy(package, dirs)
    second, previous = deploy(package, dirs)
    assert second == f"{first}-2" and previous == first


def test_rollback_swaps_current_and_previous(tmp_path: Path, dirs: dp.ReleaseDirs) -> None:
    v1, _ = deploy(release(tmp_path, "v1.tgz", "v1"), dirs)
    v2, _ = deploy(release(tmp_path, "v2.tgz", "v2"), dirs, NOW + timedelta(seconds=1))
    assert dp.rollback(dirs) == v1
    assert snapshot(dirs) == (f"releases/{v1}", f"releases/{v2}", sorted([v1, v2]), "v1")
    assert dp.rollback(dirs) == v2
    assert (dirs.bin / "VERSION").read_text() == "v2"


def test_rollback_without_previous_release_is_an_error(tmp_path: Path,
                                                       dirs: dp.ReleaseDirs) -> None:
    deploy(release(tmp_path, "v1.tgz", "v1"), dirs)
    with pytest.raises(TarsdockError, match="no previous release"):
        dp.rollback(dirs)


def test_failed_unpack_never_touches_bin(tmp_path: Path, dirs: dp.ReleaseDirs,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    deploy(release(tmp_path, "v1.tgz", "v1"), dirs)
    before = snapshot(dirs)

    def half_then_fail(archive: tarfile.TarFile, dest: Path, origin: Origin) -> None:
        (dest / "HelloServer").mkdir()
        (dest / "HelloServer" / "VERSION").write_text("half")
        raise InputError(origin, "cannot unpack: disk full")

    monkeypatch.setattr(dp, "_extract", half_then_fail)
    with pytest.raises(InputError, match="disk full"):
        deploy(release(tmp_path, "v2.tgz", "v2"), dirs, NOW + timedelta(seconds=1))
    assert snapshot(dirs) == before


def test_a_full_disk_while_unpacking_is_the_environment_not_the_package(
        tmp_path: Path, dirs: dp.ReleaseDirs, monkeypatch: pytest.MonkeyPatch) -> None:
    # it was "cannot unpack: [Errno 28] ..." with exit status 1, which says the package is bad
    deploy(release(tmp_path, "v1.tgz", "v1"), dirs)
    before = snapshot(dirs)

    def full(self: tarfile.TarFile, path: Path, **_: object) -> None:
        (Path(path) / "HelloServer").mkdir()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(tarfile.TarFile, "extractall", full)
    with pytest.raises(EnvironmentFault, match="No space left on device"):
        deploy(release(tmp_path, "v2.tgz", "v2"), dirs, NOW + timedelta(seconds=1))
    assert snapshot(dirs) == before


def test_a_plain_bin_dir_is_adopted_as_the_previous_release(tmp_path: Path,
                                                             dirs: dp.ReleaseDirs) -> None:
    dirs.bin.mkdir(parents=True)
    (dirs.bin / "VERSION").write_text("by hand")
    _, previous = deploy(release(tmp_path, "v1.tgz", "v1"), dirs)
    assert previous == "20260102T030405Z-adopted"
    assert (dirs.bin / "VERSION").read_text() == "v1"
    dp.rollback(dirs)
    assert (dirs.bin / "VERSION").read_text() == "by hand"


def test_an_empty_bin_dir_is_replaced(tmp_path: Path, dirs: dp.ReleaseDirs) -> None:
    dirs.bin.mkdir(parents=True)
    _, previous = deploy(release(tmp_path, "v1.tgz", "v1"), dirs)
    assert previous is None and not dirs.previous.exists()
    assert (dirs.bin / "VERSION").read_text() == "v1"


def test_bin_symlink_not_made_by_tarsdock_is_refused(tmp_path: Path,
                                                     dirs: dp.ReleaseDirs) -> None:
    dirs.service_dir.mkdir(parents=True)
    dirs.bin.symlink_to(tmp_path)
    with pytest.raises(TarsdockError, match="not at a release"):
        deploy(release(tmp_path, "v1.tgz", "v1"), dirs)
    assert os.readlink(dirs.bin) == str(tmp_path)


def test_nodejs_package_in_tars_deploy_layout_unpacks_the_inner_directory(
    tmp_path: Path, dirs: dp.ReleaseDirs
) -> None:
    package = make_tgz(tmp_path / "node.tgz", [
        ("dir", "HelloServer/", ""),
        ("dir", "HelloServer/HelloServer/", ""),
        ("file", "HelloServer/HelloServer/src/package.json", '{"main": "main.js"}'),
        ("file", "HelloServer/HelloServer/tars_nodejs/node-agent/bin/node-agent", "agent"),
    ])
    deploy(package, dirs, server_type="tars_nodejs")
    assert (dirs.bin / "src" / "package.json").is_file()
    assert read_package_facts(dirs.bin) == PackageFacts(node_agent=True, entry="src")


def test_cpp_package_keeps_the_executable_named_after_the_server(
    tmp_path: Path, dirs: dp.ReleaseDirs
) -> None:
    deploy(release(tmp_path, "v1.tgz", "v1"), dirs, server_type="tars_nodejs")
    assert (dirs.bin / "HelloServer").is_file()


# --- restarts -------------------------------------------------------------------------------------


class FakeRunner:
    """Records commands and answers with canned results."""

    def __init__(self, returncode: int = 0, stdout: str = "", missing: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.returncode, self.stdout, self.missing = returncode, stdout, missing

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        if self.missing:
            raise FileNotFoundError(argv[0])
        return subprocess.CompletedProcess(list(argv), self.returncode, self.stdout, "")


def test_restart_commands() -> None:
    assert dp.restart_argv("systemd", "A.B") == ["systemctl", "restart", "tars-A.B.service"]
    assert dp.restart_argv("supervisord", "A.B") == ["supervisorctl", "restart", "tars:A.B"]
    assert dp.restart_argv("supervisord", "A.B", "/x.conf") == [
        "supervisorctl", "-c", "/x.conf", "restart", "tars:A.B"]


def test_detect_supervisor() -> None:
    assert dp.detect_supervisor("A.B", FakeRunner(), systemd_booted=False) == "supervisord"
    has_unit = FakeRunner(0)
    assert dp.detect_supervisor("A.B", has_unit, systemd_booted=True) == "systemd"
    assert has_unit.calls == [["systemctl", "cat", "tars-A.B.service"]]
    assert dp.detect_supervisor("A.B", FakeRunner(1), systemd_booted=True) == "supervisord"
    assert dp.detect_supervisor("A.B", FakeRunner(missing=True), True) == "supervisord"


def test_restart_failures_are_reported() -> None:
    dp.restart(["supervisorctl", "restart", "tars:A.B"], FakeRunner(0, "tars:A.B: started"))
    with pytest.raises(TarsdockError, match="ERROR"):
        dp.restart(["supervisorctl", "restart", "tars:A.B"],
                   FakeRunner(0, "tars:A.B: ERROR (spawn error)"))
    with pytest.raises(TarsdockError, match="exit 5"):
        dp.restart(["systemctl", "restart", "tars-A.B.service"], FakeRunner(5))
    # no systemctl or supervisorctl on the host: the environment (exit 5), not the input
    with pytest.raises(EnvironmentFault, match=r"^systemctl: not found; cannot restart"):
        dp.restart(["systemctl", "restart", "x"], FakeRunner(missing=True))


@pytest.mark.parametrize(("argv", "code", "said", "fault"), [
    # supervisorctl's own exit statuses when it cannot reach supervisord (supervisorctl.py:
    # ECONNREFUSED -> 4, ENOENT -> 7), its line on stdout
    (["supervisorctl", "restart", "tars:A.B"], 4, "http://localhost:9001 refused connection\n",
     "http://localhost:9001: supervisord does not answer (refused connection); is it running? "
     "The release is deployed: restart the service when it is"),
    (["supervisorctl", "restart", "tars:A.B"], 7, "unix:///run/sv.sock no such file\n",
     "unix:///run/sv.sock: supervisord does not answer (no such file); is it running? "
     "The release is deployed: restart the service when it is"),
    (["systemctl", "restart", "tars-A.B.service"], 1,
     "System has not been booted with systemd as init system (PID 1). Can't operate.\n",
     "systemctl: systemd does not answer (System has not been booted with systemd as init system "
     "(PID 1). Can't operate.); the release is deployed: restart the service when it answers"),
])
def test_a_supervisor_that_does_not_answer_a_restart_is_the_environment(
        argv: list[str], code: int, said: str, fault: str) -> None:
    with pytest.raises(EnvironmentFault) as raised:
        dp.restart(argv, FakeRunner(code, said))
    assert str(raised.value) == fault


def test_the_real_supervisorctl_without_supervisord_is_the_environment(tmp_path: Path) -> None:
    import sys

    ctl = str(Path(sys.executable).parent / "supervisorctl")
    url = f"unix://{tmp_path}/none.sock"
    with pytest.raises(EnvironmentFault, match=re.escape(
            f"{url}: supervisord does not answer (no such file); is it running?")):
        dp.restart([ctl, "-s", url, "restart", "tars:A.B"], dp.run_command)


def test_a_bin_that_is_a_file_is_the_environment(tmp_path: Path, dirs: dp.ReleaseDirs) -> None:
    dirs.service_dir.mkdir(parents=True)
    dirs.bin.write_text("not a dir\n")
    with pytest.raises(EnvironmentFault, match=re.escape(
            f"{dirs.bin}: a file, not a directory; move it away to deploy")):
        deploy(release(tmp_path, "v1.tgz", "v1"), dirs)
    assert dirs.bin.read_text() == "not a dir\n"


# --- the command ----------------------------------------------------------------------------------

NODE_TOML = """\
[node]
name = "127.0.0.1"
tars_path = "{tars_path}"
locator = "tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p 17890"

[services."Hello.HelloServer"]
type = "tars_cpp"
template = "tars.default"
run = "native"
"""


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    config = tmp_path / "etc"
    (config / "templates").mkdir(parents=True)
    (config / "node.toml").write_text(NODE_TOML.format(tars_path=tmp_path / "tars"))
    return config


def test_cli_deploy_restart_and_rollback(tmp_path: Path, config_dir: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    bin_dir = tmp_path / "tars" / "tarsnode" / "data" / "Hello.HelloServer" / "bin"
    base = ["--config-dir", str(config_dir), "deploy", "Hello.HelloServer"]
    assert main([*base, str(release(tmp_path, "v1.tgz", "v1"))]) == 0
    assert main([*base, str(release(tmp_path, "v2.tgz", "v2"))]) == 0
    assert (bin_dir / "VERSION").read_text() == "v2"
    assert main([*base, "--rollback"]) == 0
    assert (bin_dir / "VERSION").read_text() == "v1"
    assert "rolled back to release" in capsys.readouterr().out


def test_cli_restart_uses_the_injected_runner(tmp_path: Path, config_dir: Path) -> None:
    from tarsdock.cli import build_parser

    runner = FakeRunner(0, "tars:Hello.HelloServer: started")
    argv = ["--config-dir", str(config_dir), "deploy", "Hello.HelloServer",
            str(release(tmp_path, "v1.tgz", "v1")), "--restart", "--supervisor", "supervisord",
            "--supervisorctl-config", "/tmp/s.conf"]
    args = build_parser(argv).parse_args(argv)
    assert dp.cmd_deploy(args, runner) == 0
    assert runner.calls == [["supervisorctl", "-c", "/tmp/s.conf", "restart",
                             "tars:Hello.HelloServer"]]


def test_cli_usage_and_input_errors(tmp_path: Path, config_dir: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--config-dir", str(config_dir), "deploy"]
    assert main([*base, "Hello.HelloServer"]) == 2
    assert main([*base, "Hello.HelloServer", "x.tgz", "--rollback"]) == 2
    assert main([*base, "Hello.HeloServer", str(release(tmp_path, "v1.tgz", "v1"))]) == 1
    assert "did you mean 'Hello.HelloServer'?" in capsys.readouterr().err
    evil = make_tgz(tmp_path / "evil.tgz", [("file", "../evil", "x")])
    assert main([*base, "Hello.HelloServer", str(evil)]) == 1
    assert "member '../evil'" in capsys.readouterr().err


# --- package facts --------------------------------------------------------------------------------


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize(("files", "facts"), [
    ({}, PackageFacts()),
    ({"tars_nodejs/node-agent/bin/node-agent": "", "src/package.json": "{}"},
     PackageFacts(node_agent=True, entry="src")),
    ({"tars_nodejs/node-agent/bin/node-agent": "", "package.json": "{}"},
     PackageFacts(node_agent=True)),
    ({"package.json": json.dumps({"main": "./server.node.js"}), "server.node.js": ""},
     PackageFacts(node_agent=False, entry="server.node.js")),
    ({"package.json": json.dumps({"main": "a.js", "scripts": {"start": "node b.js --x"},
                                  "nodeAgent": {"main": "c.js"}})},
     PackageFacts(node_agent=False, entry="c.js")),
    ({"package.json": json.dumps({"main": "a.js", "scripts": {"start": "node ./b.js --x"}})},
     PackageFacts(node_agent=False, entry="b.js")),
    ({"package.json": json.dumps({"main": "a.js", "scripts": {"start": "npm run x"}})},
     PackageFacts(node_agent=False, entry="a.js")),
    ({"package.json": "{}", "app.js": "", "index.js": ""},
     PackageFacts(node_agent=False, entry="app.js")),
    ({"package.json": "{}"}, PackageFacts(node_agent=False, entry="index.js")),
    ({"main.js": ""}, PackageFacts(node_agent=False, entry="index.js")),
    ({"src/package.json": json.dumps({"main": "main.js"})},
     PackageFacts(node_agent=False, entry="src/main.js")),
])
def test_read_package_facts(tmp_path: Path, files: dict[str, str], facts: PackageFacts) -> None:
    bin_dir = write(tmp_path / "bin", files) if files else tmp_path / "bin"
    assert read_package_facts(bin_dir) == facts


@pytest.mark.parametrize(("text", "message"), [
    (json.dumps({"main": "../../etc/x.js"}), ":1: key 'main': entry point '../../etc/x.js' leaves "
     "the package"),
    (json.dumps({"main": "/abs.js"}), ":1: key 'main': entry point '/abs.js' leaves the package"),
    # at the line and key it is written (a JSON error at its line)
    ('{\n  "name": "a",\n  "nodeAgent": {\n    "main": "../a.js"\n  }\n}\n',
     ":4: key 'nodeAgent.main': entry point '../a.js' leaves the package"),
    ('{\n  "scripts": {"start": "node /srv/a.js"}\n}\n',
     ":2: key 'scripts.start': entry point '/srv/a.js' leaves the package"),
    # a word of the command line no unit can carry: it failed only when rendered, naming no
    # file ("A.S: command: 'a\nb.js' contains a line break or NUL")
    ('{\n  "main": "a\\nb.js"\n}\n', ":2: key 'main': entry point 'a\\nb.js' holds a line break, "
     "which no supervisord or systemd file can carry"),
    ("{\n  \"main\": \n}", ":3: cannot read package.json: Expecting value"),
    ("[]", ": package.json is not a JSON object"),
])
def test_bad_package_json_is_an_input_error(tmp_path: Path, text: str, message: str) -> None:
    bin_dir = write(tmp_path / "bin", {"package.json": text})
    with pytest.raises(InputError) as caught:
        read_package_facts(bin_dir)
    assert str(caught.value) == str(bin_dir / "package.json") + message


def test_restart_reaches_the_supervisord_node_toml_names(tmp_path: Path, config_dir: Path) -> None:
    """supervisorctl without -c or -s asks its own default (http://localhost:9001, or the
    serverurl of a supervisord.conf it finds), not [node] supervisor_url, which apply and status
    use (found by hand: deploy --restart said 'http://localhost:9001: supervisord does not
    answer' on a node whose supervisord apply had just reached at its unix socket)."""
    from tarsdock.cli import build_parser

    node = config_dir / "node.toml"
    node.write_text(node.read_text().replace(
        "[services.", 'supervisor_url = "unix:///run/tryout/sv.sock"\n\n[services.', 1))
    runner = FakeRunner(0, "tars:Hello.HelloServer: started")
    argv = ["--config-dir", str(config_dir), "deploy", "Hello.HelloServer",
            str(release(tmp_path, "v1.tgz", "v1")), "--restart", "--supervisor", "supervisord"]
    args = build_parser(argv).parse_args(argv)
    assert dp.cmd_deploy(args, runner) == 0
    assert runner.calls == [["supervisorctl", "-s", "unix:///run/tryout/sv.sock", "restart",
                             "tars:Hello.HelloServer"]]
