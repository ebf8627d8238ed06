"""`images sync` planning, policies, credentials and retry policy, against a fake engine."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
from fake_engine import FakeEngine

from tarsdock.engine import PullError
from tarsdock.errors import Origin, TarsdockError
from tarsdock.images import (
    LineReporter,
    PullResult,
    RetryPolicy,
    Syncer,
    TerminalReporter,
    describe,
    plan,
    read_auth,
    summary,
)
from tarsdock.model import Image, PullPolicy, Registry, ServiceSpec

CPP = "127.0.0.1:5000/tars/cppbase:3.0.15"
JAVA = "127.0.0.1:5000/tars/javabase:1"


def spec(name: str, image: Image | None, run: str = "container") -> ServiceSpec:
    app, server = name.split(".")
    return ServiceSpec(app=app, server=server, type="tars_cpp", template="tars.default",
                       run=run, origin=Origin("node.toml", 1), image=image)  # type: ignore[arg-type]


def image(ref: str, pull: PullPolicy = "missing", registry: Registry | None = None,
          restart: bool = False, id: str = "") -> Image:
    return Image(ref, id=id, registry=registry, pull=pull, restart_on_update=restart)


class Clock:
    """A fake monotonic clock whose sleep advances it."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Recorder(LineReporter):
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.progressed: list[tuple[str, int, int]] = []
        super().__init__(self.lines.append)

    def progress(self, ref: str, done: int, total: int) -> None:
        self.progressed.append((ref, done, total))


def syncer(engine: FakeEngine, clock: Clock | None = None, **kwargs: object) -> Syncer:
    clock = clock or Clock()
    return Syncer(engine, Recorder(), clock=clock, sleep=clock.sleep, **kwargs)  # type: ignore[arg-type]


# --- planning -------------------------------------------------------------------------------


def test_twenty_services_on_two_images_make_two_jobs() -> None:
    cpp, java = image(CPP, id="cppbase"), image(JAVA)
    specs = [spec(f"App.S{i:02d}", cpp if i % 2 else java) for i in range(20)]
    jobs = plan(specs)
    assert [j.ref for j in jobs] == [CPP, JAVA]
    assert len(jobs[0].services) == 10 and len(jobs[1].services) == 10
    assert "App.S01" in jobs[0].services


def test_native_services_pull_their_image_and_services_without_one_nothing() -> None:
    # a native service's image is pulled too (switching it to container needs only a restart),
    # but a new digest never restarts it
    specs = [spec("A.Native", image(CPP, restart=True), run="native"),
             spec("A.Bare", None)]
    [job] = plan(specs)
    assert (job.ref, job.services, job.restart_on_update) == (CPP, ("A.Native",), ())


def test_only_selects_by_image_id_reference_or_service() -> None:
    specs = [spec("A.Cpp", image(CPP, id="cppbase")), spec("A.Java", image(JAVA))]
    assert [j.ref for j in plan(specs, ["cppbase"])] == [CPP]
    assert [j.ref for j in plan(specs, [JAVA])] == [JAVA]
    assert [j.ref for j in plan(specs, ["A.Java"])] == [JAVA]
    assert plan(specs, ["nothing"]) == []


def test_the_most_eager_policy_wins_for_a_shared_image() -> None:
    specs = [spec("A.One", image(CPP, "never")), spec("A.Two", image(CPP, "always", restart=True))]
    (job,) = plan(specs)
    assert job.policy == "always"
    assert job.restart_on_update == ("A.Two",)


# --- policies -------------------------------------------------------------------------------


def test_missing_images_are_pulled_once_each_and_present_ones_not() -> None:
    engine = FakeEngine(images={JAVA: "sha256:java"})
    specs = [spec(f"A.S{i}", image(CPP if i < 3 else JAVA)) for i in range(6)]
    results = syncer(engine).sync(plan(specs))
    assert [r.outcome for r in results] == ["pulled", "present"]
    assert [ref for ref, _ in engine.pulls] == [CPP]


def test_always_pulls_and_a_new_digest_is_an_update() -> None:
    engine = FakeEngine(images={CPP: "sha256:old"}, script={CPP: ["sha256:new"]})
    (result,) = syncer(engine).sync(plan([spec("A.S", image(CPP, "always"))]))
    assert result.outcome == "updated"
    assert (result.previous_id, result.image_id) == ("sha256:old", "sha256:new")


def test_always_with_the_same_digest_is_present() -> None:
    engine = FakeEngine(images={CPP: "sha256:same"}, script={CPP: ["sha256:same"]})
    (result,) = syncer(engine).sync(plan([spec("A.S", image(CPP, "always"))]))
    assert result.outcome == "present" and engine.pulls


def test_never_does_not_pull_and_fails_when_absent() -> None:
    engine = FakeEngine()
    (result,) = syncer(engine).sync(plan([spec("A.S", image(CPP, "never"))]))
    assert not result.ok and result.permanent and "never" in result.error
    assert engine.pulls == []


# --- retries --------------------------------------------------------------------------------


def test_transient_errors_are_retried_with_growing_back_off() -> None:
    down = PullError(CPP, "connection refused", permanent=False)
    engine = FakeEngine(script={CPP: [down, down, "sha256:cpp"]})
    clock = Clock()
    (result,) = syncer(engine, clock, retry=RetryPolicy(attempts=4, initial=1.0)).sync(
        plan([spec("A.S", image(CPP))]))
    assert result.outcome == "pulled" and result.attempts == 3
    assert clock.slept == [1.0, 2.0]


def test_permanent_errors_are_reported_at_once() -> None:
    engine = FakeEngine(script={CPP: [PullError(CPP, "not found", permanent=True)]})
    clock = Clock()
    (result,) = syncer(engine, clock).sync(plan([spec("A.S", image(CPP))]))
    assert not result.ok and result.permanent and result.attempts == 1
    assert clock.slept == [] and len(engine.pulls) == 1


def test_retries_stop_at_the_last_attempt() -> None:
    engine = FakeEngine(script={CPP: [PullError(CPP, "503", permanent=False)]})
    (result,) = syncer(engine, retry=RetryPolicy(attempts=3)).sync(
        plan([spec("A.S", image(CPP))]))
    assert not result.ok and not result.permanent and len(engine.pulls) == 3


def test_retries_stop_before_the_deadline() -> None:
    engine = FakeEngine(script={CPP: [PullError(CPP, "timed out", permanent=False)]})
    clock = Clock()
    (result,) = syncer(engine, clock, timeout=5.0,
                       retry=RetryPolicy(attempts=10, initial=2.0)).sync(
        plan([spec("A.S", image(CPP))]))
    assert not result.ok
    assert clock.now - 100.0 < 5.0   # never slept past the deadline
    assert len(engine.pulls) == 2    # 2 s, then a 4 s wait would pass it


def test_back_off_is_capped() -> None:
    policy = RetryPolicy(initial=1.0, factor=2.0, maximum=5.0)
    assert [policy.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_concurrent_sync_keeps_job_order() -> None:
    engine = FakeEngine()
    refs = [f"127.0.0.1:5000/img{i}:1" for i in range(8)]
    results = syncer(engine, workers=4).sync(
        plan([spec(f"A.S{i}", image(ref)) for i, ref in enumerate(refs)]))
    assert [r.job.ref for r in results] == sorted(refs)
    assert all(r.outcome == "pulled" for r in results)


# --- credentials ----------------------------------------------------------------------------


def registry(tmp_path: Path, password: str = "s3cret-pa55", mode: int = 0o600) -> Registry:
    secret = tmp_path / "main.password"
    secret.write_text(password + "\n")
    secret.chmod(mode)
    return Registry("main", "127.0.0.1:5000", "deploy", str(secret))


def test_credentials_come_from_the_password_file_and_reach_the_engine(tmp_path: Path) -> None:
    engine = FakeEngine()
    sync = syncer(engine)
    sync.sync(plan([spec("A.S", image(CPP, registry=registry(tmp_path)))]))
    ((_, auth),) = engine.pulls
    assert auth is not None and (auth.username, auth.password) == ("deploy", "s3cret-pa55")
    assert auth.registry == "127.0.0.1:5000"
    assert "s3cret" not in repr(auth)


def test_the_secret_appears_in_no_output_even_on_failure(tmp_path: Path) -> None:
    refused = PullError(CPP, "authentication refused by registry 127.0.0.1:5000", permanent=True)
    engine = FakeEngine(script={CPP: [refused]})
    sync = syncer(engine)
    results = sync.sync(plan([spec("A.S", image(CPP, registry=registry(tmp_path)))]))
    reporter = sync.reporter
    assert isinstance(reporter, Recorder)
    text = "\n".join([*reporter.lines, summary(results), repr(results)])
    assert "127.0.0.1:5000" in text and "refused" in text
    assert "s3cret" not in text


def test_an_unreadable_password_file_names_the_registry(tmp_path: Path) -> None:
    missing = Registry("main", "127.0.0.1:5000", "deploy", str(tmp_path / "nope"))
    engine = FakeEngine()
    (result,) = syncer(engine).sync(plan([spec("A.S", image(CPP, registry=missing))]))
    assert not result.ok and result.permanent
    assert "registry 'main' (127.0.0.1:5000)" in result.error and "nope" in result.error
    assert engine.pulls == []


def test_a_loose_password_file_mode_warns(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    auth = read_auth(registry(tmp_path, mode=0o644))
    assert auth is not None
    assert "chmod 600" in capsys.readouterr().err


def test_a_registry_without_username_sends_no_credentials() -> None:
    assert read_auth(Registry("anon", "127.0.0.1:5000")) is None
    assert read_auth(None) is None


# --- reporting ------------------------------------------------------------------------------


def test_describe_and_summary_lines() -> None:
    (job,) = plan([spec("A.S", image(CPP))])
    ok = PullResult(job, "pulled", "sha256:0123456789abcdef", seconds=1.25)
    bad = PullResult(job, "failed", error="not found", permanent=True, attempts=1)
    assert describe(ok) == f"pulled   {CPP} (0123456789ab, 1.2 s)"
    assert describe(bad) == f"failed   {CPP}: not found (permanent; used by A.S)"
    assert summary([ok, bad]) == "images: 0 present, 1 pulled, 0 updated, 1 failed (of 2)"


def test_progress_reaches_the_reporter() -> None:
    engine = FakeEngine()
    sync = syncer(engine)
    sync.sync(plan([spec("A.S", image(CPP))]))
    assert isinstance(sync.reporter, Recorder)
    assert sync.reporter.progressed == [(CPP, 50, 100)]


def test_terminal_reporter_redraws_one_status_line() -> None:
    stream = io.StringIO()
    reporter = TerminalReporter(stream)
    (job,) = plan([spec("A.S", image(CPP))])
    reporter.progress(CPP, 30, 120)
    reporter.finished(PullResult(job, "pulled", "sha256:abc"))
    out = stream.getvalue()
    assert f"pulling 1: {CPP} 25%" in out
    assert out.endswith("\r\x1b[K")          # the status line is cleared when nothing is left
    assert f"\r\x1b[Kpulled   {CPP}" in out


def test_cli_registers_images_sync() -> None:
    from tarsdock.cli import build_parser

    argv = ["images", "sync", "--jobs", "2", "--only", "cppbase"]
    args = build_parser(argv).parse_args(argv)
    assert args.jobs == 2 and args.only == ["cppbase"]
    assert os.path.basename(args.func.__module__) == "tarsdock.images"


@pytest.mark.parametrize(("raw", "problem"), [
    (b"\xffsecret\n", "not UTF-8 text: byte 0xff at offset 0"),
    (b"\xef\xbb\xbfsecret\n", "starts with a UTF-8 byte-order mark"),
    (b"secret\x00\n", "holds the control character U+0000"),
])
def test_a_password_the_registry_would_get_mangled_is_one_line_no_traceback(
        tmp_path: Path, raw: bytes, problem: str) -> None:
    # a pull reads the password as validate does; a bad byte was a UnicodeDecodeError traceback
    (tmp_path / "pw").write_bytes(raw)
    os.chmod(tmp_path / "pw", 0o600)
    registry = Registry("r", "harbor.example.com", "u", str(tmp_path / "pw"))
    with pytest.raises(TarsdockError, match=re.escape(f"password_file {tmp_path}/pw {problem}")):
        read_auth(registry)


def test_a_password_loses_only_its_line_break(tmp_path: Path) -> None:
    (tmp_path / "pw").write_bytes(b"s3 cr\xc3\xa9t\r\n")
    os.chmod(tmp_path / "pw", 0o600)
    auth = read_auth(Registry("r", "harbor.example.com", "u", str(tmp_path / "pw")))
    assert auth is not None and auth.password == "s3 cr\u00e9t"


def test_docker_that_does_not_answer_is_the_environment_one_line_exit_5(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # not "an image is missing" (3) per image: nothing could be tried (issue 9, item 7)
    from tarsdock.cli import main
    from tarsdock.options import EXIT_ENVIRONMENT

    sock = tmp_path / "none.sock"
    (tmp_path / "node.toml").write_text(
        f'[node]\nname = "n1"\ntars_path = "{tmp_path}"\nlocator = "tars.tarsregistry.QueryObj'
        f'@tcp -h 127.0.0.1 -p 17890"\ndocker_socket = "{sock}"\n'
        '[services."A.S"]\ntype = "tars_cpp"\nimage = "busybox:1"\n'
        '[services."A.T"]\ntype = "tars_cpp"\nimage = "busybox:2"\n')
    assert main(["--config-dir", str(tmp_path), "images", "sync", "--quiet"]) == EXIT_ENVIRONMENT
    assert capsys.readouterr().err.splitlines() == [
        f"error: {sock}: Docker does not answer (No such file or directory)"]
