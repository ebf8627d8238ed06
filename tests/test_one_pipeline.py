"""validate reports exactly what generate --dry-run reports: the same errors and warnings, each
at its file:line, for every bad input this suite knows (the tables and the case files)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_bad_inputs import BAD_INPUTS
from test_bad_manifests import CASES, Content, write_config
from test_generate_cases import CASES as CASE_DIR
from test_generate_cases import config_dir, read_case
from test_resolve import BAD_TEMPLATES, NODE
from test_shwords import REFUSED
from test_tcconfig import BAD as BAD_TC_CONFIG

from tarsdock.cli import main
from tarsdock.generate import FORMATS

Files = dict[str, Content]
JAVA_NODE = NODE.replace('type = "tars_cpp"', 'type = "tars_java"')
MINIMAL_NODE = ('[node]\nname = "n1"\ntars_path = "/t"\nlocator = "a.b.C@tcp -h 127.0.0.1 '
                '-p 1"\n')
# test_manifest's refused [node] keys, test_images' mangled password files
NODE_ROWS = ['supervisor = "upstart"', 'supervisor_url = "unix://run/sv.sock"',
             'supervisor_url = "ftp://x"']
PASSWORDS = [b"\xffsecret\n", b"secret\x00\n"]
REGISTRY = ('[registries.h]\nurl = "harbor.example.com"\nusername = "u"\npassword_file = "pw"\n'
            '[services."A.S"]\ntype = "tars_cpp"\nimage = "harbor.example.com/a/b:1"\n')


def tc_escape(text: str) -> str:
    """A value as TC_Config writes it (tcconfig's escapes), so the parser gives `text` back."""
    return (text.replace("\\", "\\\\").replace("=", "\\=").replace("\r", "\\r")
            .replace("\n", "\\n").replace("\t", "\\t"))


def java_template(jvmparams: str) -> str:
    """A template whose server<jvmparams> is the text tarsnode would hand to sh."""
    return (f"<tars>\n<application>\n<server>\njvmparams={tc_escape(jvmparams)}\n"
            "mainclass=com.example.Main\n</server>\n</application>\n</tars>\n")


# the unit tables of the parser, the sh rules, [node] keys and password files, as config dirs
FROM_UNIT_TABLES: list[tuple[str, Files]] = [
    *((f"tc_config: {message}", {"node.toml": NODE, "templates/t.app": text})
      for text, message in BAD_TC_CONFIG),
    *((f"sh: {reason}", {"node.toml": JAVA_NODE, "templates/t.app": java_template(text)})
      for text, reason in REFUSED),
    *((f"node: {line}", {"node.toml": MINIMAL_NODE + line + "\n"}) for line in NODE_ROWS),
    *((f"password: {raw!r}", {"node.toml": MINIMAL_NODE + REGISTRY, "pw": (raw, 0o600)})
      for raw in PASSWORDS),
]
INPUTS: list[tuple[str, Files | Path]] = [
    *((f"manifest: {name}", files) for name, files, _ in CASES),
    *((f"template: {message}", {"node.toml": NODE, "templates/t.app": template})
      for template, message in BAD_TEMPLATES),
    *FROM_UNIT_TABLES,
    *((f"input: {name}", files) for name, files, _, _ in BAD_INPUTS),
    *((f"case: {path.stem}", path) for path in sorted(CASE_DIR.glob("*.toml"))),
]


def reported(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, set[str]]:
    """Exit status and the set of `error:` and `warning:` lines of one run."""
    code = main(argv)
    lines = capsys.readouterr().err.splitlines()
    return code, {line for line in lines if line.startswith(("error: ", "warning: "))}


@pytest.mark.parametrize("given", [i[1] for i in INPUTS], ids=[i[0] for i in INPUTS])
def test_validate_reports_what_generate_reports(tmp_path: Path, given: Files | Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    if isinstance(given, Path):
        directory = config_dir(read_case(given), tmp_path)
    else:
        directory = tmp_path / "config"
        write_config(directory, given)
    base = ["--config-dir", str(directory)]
    code, found = reported(capsys, [*base, "validate"])
    for fmt in FORMATS:
        out = tmp_path / f"out-{fmt}"
        assert reported(capsys, [*base, "generate", "--format", fmt, "--out", str(out),
                                 "--dry-run"]) == (code, found), fmt


@pytest.mark.parametrize("files", [i[1] for i in FROM_UNIT_TABLES],
                         ids=[i[0] for i in FROM_UNIT_TABLES])
def test_each_unit_table_row_is_an_error_at_its_line(tmp_path: Path, files: Files,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # so that the comparison above is not between two empty sets
    write_config(tmp_path, files)
    code, found = reported(capsys, ["--config-dir", str(tmp_path), "validate"])
    assert code == 1 and found, found
    assert all(line.split(":")[2].strip().isdigit() for line in found), found
