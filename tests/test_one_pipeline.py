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

from tarsdock.cli import main
from tarsdock.generate import FORMATS

Files = dict[str, Content]
INPUTS: list[tuple[str, Files | Path]] = [
    *((f"manifest: {name}", files) for name, files, _ in CASES),
    *((f"template: {message}", {"node.toml": NODE, "templates/t.app": template})
      for template, message in BAD_TEMPLATES),
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
