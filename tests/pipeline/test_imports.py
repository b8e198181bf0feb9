"""What the production path imports: `imagemend run` never loads the evaluation, damage or report code.

Checked in a fresh interpreter (sys.modules), since this test session has imported everything."""

import json
import os
from pathlib import Path
import subprocess
import sys

from PIL import Image

from tests.support.images import encode, pixels

REPO = Path(__file__).resolve().parents[2]
RUN_MODEL = ("imagemend.model", "imagemend.model.core")  # the run path's only model code: the core layer


def off_the_run_path(loaded: set[str]) -> set[str]:
    """Loaded modules the run path must not need: model code outside the core, the eval hooks, matplotlib."""
    return {m for m in loaded
            if (m.startswith("imagemend.model.") and not m.startswith("imagemend.model.core"))
            or m == "imagemend.pipeline.evaluate" or m.split(".")[0] == "matplotlib"}


def loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    script = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                         check=True, timeout=600)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_the_run_path_imports_no_evaluation_damage_or_report_code(tmp_path):
    photo = tmp_path / "in" / "a.png"
    photo.parent.mkdir()
    photo.write_bytes(encode(Image.fromarray(pixels(24, 32, 3, 1)), "PNG"))
    loaded = loaded_after(f"""
import imagemend.pipeline.job, imagemend.pipeline.shard, imagemend.pipeline.infer, imagemend.pipeline.cli
import imagemend.pipeline.graph, imagemend.pipeline.sources
from imagemend.pipeline import cli
try:
    cli.main(["run", "--help"])
except SystemExit:
    pass
try:
    cli.main(["run", "--input", {str(photo.parent)!r}, "--output", {str(tmp_path / "out")!r}, "--no-progress"])
except SystemExit as e:
    assert not e.code, e.code
""")
    assert "imagemend.pipeline.shard" in loaded and "imagemend.model.core.restore" in loaded  # it did run the job
    assert not off_the_run_path(loaded), sorted(off_the_run_path(loaded))


def test_imagemend_run_help_imports_only_what_run_needs():
    loaded = loaded_after("""
from imagemend.pipeline import cli
try:
    cli.main(["run", "--help"])
except SystemExit:
    pass
""")
    assert "imagemend.pipeline.job" in loaded
    assert not off_the_run_path(loaded), sorted(off_the_run_path(loaded))
    assert "imagemend.pipeline.demo" not in loaded and "imagemend.pipeline.preview" not in loaded
