"""A domain a template or profile declares under <tars><application><server> is an adapter to
TarsCpp (tarsdock.adapterdomains): what it lacks that makes a tars_cpp service exit at start is an
error at the domain's line, what makes it answer nothing a warning; for another runtime a
warning that it is not checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tarsdock import resolve
from tarsdock.adapterdomains import check_domain, servant_prefix
from tarsdock.cli import main
from tarsdock.errors import Origin
from tarsdock.listeners import Listening
from tarsdock.shards import JOBS_VARIABLE
from tarsdock.tcconfig import Config, Param

NODE = """\
[node]
name = "10.0.0.5"
tars_path = "{tars}"
locator = "tars.tarsregistry.QueryObj@tcp -h 10.0.0.1 -p 17890"

[services."App1.S1"]
type = "{type}"
template = "t.adapters"
local_port = 41001
main_class = "a.B"
[[services."App1.S1".adapters]]
servant = "App1.S1.Obj"
endpoint = "tcp -h 10.0.0.5 -p 21001"
"""
# the template's <server> sub-domain opens at line DOMAIN_LINE (its keys below it)
TEMPLATE = """\
<tars>
  <application>
    <server>
      <{name}>
{keys}      </{name}>
      mainclass = ${{mainclass}}
    </server>
  </application>
</tars>
"""
DOMAIN_LINE = 4
FULL = {"endpoint": "tcp -h ${localip} -p 22000", "servant": "${modulename}.FooObj",
        "allow": "", "threads": "2"}
WRITTEN = ("endpoint", "servant", "allow", "threads")


def node(root: Path, keys: dict[str, str], name: str = "${modulename}.FooAdapter",
         runtime: str = "tars_cpp", more: str = "") -> None:
    """A node whose one service's template declares the domain `name` with `keys`."""
    (root / "cfg" / "templates").mkdir(parents=True)
    (root / "cfg" / "node.toml").write_text(NODE.format(tars=root / "tars", type=runtime) + more)
    written = "".join(f"        {key} = {value}\n" for key, value in keys.items())
    (root / "cfg" / "templates" / "t.adapters").write_text(
        TEMPLATE.format(name=name, keys=written))


def run(root: Path, *argv: str) -> int:
    return main(["--config-dir", str(root / "cfg"), *argv])


def without(*keys: str) -> dict[str, str]:
    return {key: value for key, value in FULL.items() if key not in keys}


@pytest.fixture(params=["1", "3"], ids=["one process", "three processes"])
def jobs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(JOBS_VARIABLE, request.param)


def exit_message(key: str) -> str:
    return (f"error: templates/t.adapters:{DOMAIN_LINE}: key '{key}': <${{modulename}}.FooAdapter>"
            " under <server> is an adapter to TarsCpp and has no " + key + ": the service exits "
            "at start (Application::bindAdapter reads it with TC_Config::operator[], which "
            "throws)")


@pytest.mark.usefixtures("jobs")
@pytest.mark.parametrize("missing", ["endpoint", "allow"])
def test_a_tars_cpp_adapter_domain_without_endpoint_or_allow_is_an_error_at_its_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], missing: str) -> None:
    # Application::bindAdapter reads both with TC_Config::operator[]: a missing key throws
    # TC_ConfigNoParam_Exception, and Application::main exits
    node(tmp_path, without(missing))
    hint = " (an empty allow allows every address)" if missing == "allow" else ""
    assert run(tmp_path, "validate") == 1
    assert capsys.readouterr().err == exit_message(missing) + hint + "\n"
    out = tmp_path / "out"
    assert run(tmp_path, "generate", "--format", "systemd", "--out", str(out)) == 1
    assert capsys.readouterr().err == exit_message(missing) + hint + "\n"
    assert not out.exists() and not (tmp_path / "tars").exists()


@pytest.mark.usefixtures("jobs")
def test_a_tars_cpp_adapter_domain_without_servant_is_an_error_at_its_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # TC_Config::get gives "" and Application::checkServantNameValid exits
    node(tmp_path, without("servant"))
    assert run(tmp_path, "validate") == 1
    assert capsys.readouterr().err == (
        f"error: templates/t.adapters:{DOMAIN_LINE}: key 'servant': <${{modulename}}.FooAdapter> "
        "under <server> is an adapter to TarsCpp and has no servant: the service exits at start "
        "(Application::checkServantNameValid wants one that starts with 'App1.S1.')\n")


@pytest.mark.usefixtures("jobs")
@pytest.mark.parametrize("servant", ["App1.S2.FooObj", "App1.S1", "app1.s1.FooObj"])
def test_a_servant_not_of_the_service_is_an_error_at_its_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], servant: str) -> None:
    # checkServantNameValid: longer than "App.Server." and starting with it, case and all
    node(tmp_path, {**FULL, "servant": servant})
    assert run(tmp_path, "validate") == 1
    assert capsys.readouterr().err == (
        f"error: templates/t.adapters:{DOMAIN_LINE + 2}: key 'servant': servant '{servant}' of "
        "<${modulename}.FooAdapter> does not start with 'App1.S1.': TarsCpp exits at start "
        "(Application::checkServantNameValid)\n")


@pytest.mark.usefixtures("jobs")
def test_a_servant_that_is_the_prefix_alone_is_said_to_name_no_object(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # checkServantNameValid (TarsCloud/TarsCpp servant/libservant/Application.cpp) exits for a
    # servant no longer than "App.Server.": 'App1.S1.' starts with it, so the error says what
    # it lacks (it said "'App1.S1.' does not start with 'App1.S1.'")
    node(tmp_path, {**FULL, "servant": "App1.S1."})
    assert run(tmp_path, "validate") == 1
    assert capsys.readouterr().err == (
        f"error: templates/t.adapters:{DOMAIN_LINE + 2}: key 'servant': servant 'App1.S1.' of "
        "<${modulename}.FooAdapter> names no object after 'App1.S1.': TarsCpp exits at start "
        "(Application::checkServantNameValid)\n")


def test_the_servant_prefix_is_the_configs_app_and_server() -> None:
    # Application::initializeServer: server<app>, "UNKNOWN" when empty; server<server>, the
    # binary's name when empty
    origin = Origin("t", 1)
    server = Config("server", origin, {"app": Param("A", origin), "server": Param("", origin)})
    assert servant_prefix(server, "Bin") == "A.Bin."
    assert servant_prefix(Config("server", origin), "Bin") == "UNKNOWN.Bin."


@pytest.mark.usefixtures("jobs")
def test_a_tars_cpp_adapter_domain_without_threads_is_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the default is "0" in TarsCpp 2.0's Application::bindAdapter: no handler thread
    node(tmp_path, without("threads"))
    assert run(tmp_path, "validate") == 0
    assert capsys.readouterr().err == (
        f"warning: templates/t.adapters:{DOMAIN_LINE}: key 'threads': <${{modulename}}.FooAdapter> "
        "under <server> is an adapter to TarsCpp and has no threads: TarsCpp 3 takes 1 handler "
        "thread, TarsCpp 2.0 none (Application::bindAdapter's default), and the adapter then "
        "answers no request; write threads\n")


@pytest.mark.usefixtures("jobs")
def test_every_missing_key_is_reported_with_every_other_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a domain with nothing, a manifest error besides: all in one report, nothing written
    node(tmp_path, {"maxconns": "10"},
         more='[services."App1.S2"]\ntype = "tars_cpp"\nthreads = 1\n')
    out = tmp_path / "out"
    assert run(tmp_path, "generate", "--format", "supervisord", "--out", str(out)) == 1
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(": ")[2] for line in lines if "t.adapters" in line] == [
        "key 'allow'", "key 'endpoint'", "key 'servant'"]
    assert any("node.toml" in line and "key 'threads'" in line for line in lines)
    assert not out.exists()


@pytest.mark.usefixtures("jobs")
def test_a_template_domain_moving_a_manifest_adapter_gets_the_manifests_keys(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the domain of the manifest's adapter, given another endpoint: every other key is the
    # manifest's (resolve.adapter_config), so TarsCpp starts with it
    node(tmp_path, {"endpoint": "tcp -h 10.0.0.5 -p 21002"}, name="${modulename}.ObjAdapter")
    text = (tmp_path / "cfg" / "templates" / "t.adapters").read_text()
    (tmp_path / "cfg" / "templates" / "t.adapters").write_text(
        text.replace("${modulename}.ObjAdapter", "App1.S1.ObjAdapter"))
    assert run(tmp_path, "validate") == 0
    assert capsys.readouterr().err == ""


@pytest.mark.usefixtures("jobs")
def test_a_domain_without_a_key_is_one_error_however_many_services_use_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # (without an endpoint: with one, the services would clash on its port)
    node(tmp_path, without("endpoint"), more="".join(
        f'[services."App1.S{i}"]\ntype = "tars_cpp"\ntemplate = "t.adapters"\n'
        for i in range(2, 5)))
    assert run(tmp_path, "validate") == 1
    assert capsys.readouterr().err == exit_message("endpoint") + "\n"


@pytest.mark.usefixtures("jobs")
@pytest.mark.parametrize("missing", ["endpoint", "servant"])
def test_another_runtimes_domain_without_endpoint_or_servant_is_not_checked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], missing: str) -> None:
    # TarsJava's ServantAdapterConfig reads both with no default, and no `allow`, no servant
    # check (TarsCloud/TarsJava core/src/main/java/com/qq/tars/server/config/
    # ServantAdapterConfig.java, its constructor): a warning, not TarsCpp's error
    node(tmp_path, without(missing, "allow", "threads"), runtime="tars_java")
    assert run(tmp_path, "validate") == 0
    assert capsys.readouterr().err == (
        f"warning: templates/t.adapters:{DOMAIN_LINE}: key '{missing}': "
        f"<${{modulename}}.FooAdapter> under <server> has no {missing}: not checked for a "
        "tars_java service: tarsdock reads adapter domains as TarsCpp does (which exits without "
        "one), and tars_java's runtime reads them its own way\n")


@pytest.mark.usefixtures("jobs")
def test_a_full_domain_of_another_runtime_is_no_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    node(tmp_path, without("allow", "threads"), runtime="tars_java")
    assert run(tmp_path, "validate") == 0
    assert capsys.readouterr().err == ""


@given(st.sets(st.sampled_from(WRITTEN)),
       st.sampled_from(["tars_cpp", "tars_java", "tars_go", "tars_nodejs", "tars_php"]))
def test_what_is_reported_is_what_the_domain_lacks(written: set[str], runtime: str) -> None:
    origin = Origin("templates/t", 4)
    domain = Config("A.B.FooAdapter", origin, {
        key: Param("A.B.FooObj" if key == "servant" else FULL[key], origin) for key in written})
    found = Listening()
    check_domain(domain, "A.B.", runtime, found)
    missing = set(WRITTEN) - written
    if runtime == "tars_cpp":
        assert {e.key for e in found.errors} == missing - {"threads"}
        assert {n.key for n in found.notes} == missing & {"threads"}
    else:
        assert found.errors == []
        assert {n.key for n in found.notes} == missing & {"endpoint", "servant"}
    assert all(problem.origin == origin for problem in [*found.errors, *found.notes])


def test_only_services_whose_chain_or_profile_may_declare_a_domain_are_looked_into(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the cost per service: a service whose template chain and profile declare no domain under
    # <server> (nearly every one) is not walked again (resolve._may_listen)
    node(tmp_path, FULL, more=(
        '[services."App1.S2"]\ntype = "tars_cpp"\n'
        '[services."App1.S3"]\ntype = "tars_cpp"\n'
        'profile = "<tars>\\n<application>\\n<server>\\n<X>\\nallow =\\n</X>\\n</server>\\n'
        '</application>\\n</tars>\\n"\n'
        '[services."App1.S4"]\ntype = "tars_cpp"\n'
        'profile = "<tars>\\n<application>\\n<client>\\nk = v\\n</client>\\n</application>\\n'
        '</tars>\\n"\n'))
    seen: list[str] = []
    looked = resolve.final_listeners
    monkeypatch.setattr(resolve, "final_listeners",
                        lambda service, found: (seen.append(service.name),
                                                looked(service, found))[1])
    node_errors = pytest.raises(Exception, match="<X> under <server>")
    with node_errors:
        resolve.load_node(tmp_path / "cfg")
    assert set(seen) == {"App1.S1", "App1.S3"}


@pytest.mark.usefixtures("jobs")
def test_a_template_app_of_another_name_fails_the_manifests_servants(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # checkServantNameValid holds for every adapter: a chain whose <server> writes another app
    # (no domain of its own) makes the manifest adapter's servant one TarsCpp exits for
    (tmp_path / "cfg" / "templates").mkdir(parents=True)
    (tmp_path / "cfg" / "node.toml").write_text(NODE.format(tars=tmp_path / "tars",
                                                            type="tars_cpp"))
    (tmp_path / "cfg" / "templates" / "t.adapters").write_text(
        "<tars>\n<application>\n<server>\napp = Other\n</server>\n</application>\n</tars>\n")
    assert run(tmp_path, "validate") == 1
    assert capsys.readouterr().err == (
        "error: node.toml:11: key 'servant': servant 'App1.S1.Obj' of <App1.S1.ObjAdapter> does "
        "not start with 'Other.S1.': TarsCpp exits at start (Application::checkServantNameValid)"
        "\n")
