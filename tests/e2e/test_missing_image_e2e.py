"""validate and generate ask the real Docker Engine for the images pull = "never" needs.

The tester's L3 (30 Nov): a typo in such a ref (`tarsdock-test/pythn:1`) validated fine, then
every start failed with image-missing, and nothing in tarsdock would pull it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import docker
import pytest

from .e2e_nodes import NodeDir
from .harness import BUSYBOX_IMAGE, RUN_ID, app_name, run

pytestmark = pytest.mark.e2e


def test_an_absent_image_that_is_never_pulled_is_a_warning_at_its_line(
        tmp_path: Path, docker_engine: docker.DockerClient) -> None:
    docker_engine.images.get(BUSYBOX_IMAGE)     # there: the test images are built (setup.sh)
    absent = f"tarsdock-e2e/absent-{RUN_ID}:1"
    images = (f'[images.present]\nref = "{BUSYBOX_IMAGE}"\npull = "never"\n'
              f'[images.absent]\nref = "{absent}"\npull = "never"\n'
              f'[images.pulled]\nref = "{absent}-too"\n')
    nd = NodeDir(tmp_path, app_name("Img"), node_extra=images)
    for server, image in [("Here", "present"), ("Gone", "absent"), ("Later", "pulled")]:
        nd.service(server, f'type = "not_tars"\nrun = "container"\nimage = "{image}"\n'
                   'command = ["/bin/sleep", "600"]')
    nd.write()
    absent_line = (nd.config_dir / "node.toml").read_text().splitlines().index(
        "[images.absent]") + 1
    warning = (f"warning: node.toml:{absent_line}: image '{absent}' is not in the engine and its "
               f"pull is \"never\": 1 service(s) ({nd.app}.Gone) will not start (image-missing)")
    out = tmp_path / "out"
    for args in (["validate"], ["generate", "--format", "supervisord", "--out", str(out)]):
        proc = run([sys.executable, "-m", "tarsdock", "--config-dir", str(nd.config_dir), *args],
                   check=False)
        assert proc.returncode == 0, proc.stderr
        lines = [line for line in proc.stderr.splitlines() if "is not in the engine" in line]
        # only the absent one: the present image and the one pull = "missing" fetches say nothing
        assert len(lines) == 1 and lines[0].startswith(warning), proc.stderr
