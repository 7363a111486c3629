"""Known duplicates stay gone: scripts call the package (no module builders, training or evaluation loops,
core counters of their own), and the uniform-offset constants are written once.

A plain source scan, so it fails with the file and line of the copy.
"""

from __future__ import annotations

import io
import math
import re
import tokenize
from pathlib import Path

import numpy as np
import pytest

from hih.codecs.common import MEAN_DIST_TO_CENTRE, MEAN_DIST_TO_CORNER

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "scripts").glob("*.py"))
PYTHON = sorted([*SCRIPTS, *(ROOT / "src").rglob("*.py"), *(ROOT / "tests").glob("*.py")])

#: pattern -> what scripts use instead.
SCRIPT_DUPLICATES = {
    r"class \w+\([^)]*LightningModule": "hih.module.FaceAlignmentModule",
    r"def (training|validation|test)_step\b": "FaceAlignmentModule's steps, run by a Trainer (hih.bench.timed_fit)",
    r"instantiate\(\s*cfg\.module\b": "hih.pipeline.build_module",
    r"sched_getaffinity|os\.cpu_count|def _cores": "hih.bench.usable_cores",
    r"\.optimizer_factory\(": "the module's configure_optimizers, called by a Trainer",
    r"meanfaces|wflw98\.txt": "Layout.mean_shape (hih.data.datasets.get_layout)",
    r"EYES\s*=|\(60,\s*72\)": "Layout.norm_pair",
    r"\bif name == \"hih_": "the method registry (hih.methods.get_method)",
}
#: scripts whose bare loop is the point (named so in their docstrings), for the optimizer pattern only.
BARE_LOOPS = {"bench_train.py", "decimal_probe.py"}


def _hits(path: Path, pattern: str) -> list[str]:
    text = path.read_text()
    return [f"{path.relative_to(ROOT)}:{text[: m.start()].count(chr(10)) + 1}" for m in re.finditer(pattern, text)]


@pytest.mark.parametrize("pattern", list(SCRIPT_DUPLICATES))
def test_scripts_do_not_copy_the_package(pattern):
    hits = [h for path in SCRIPTS for h in _hits(path, pattern)]
    assert not hits, f"{hits}: use {SCRIPT_DUPLICATES[pattern]}"


def test_scripts_build_optimizers_only_in_named_bare_loops():
    hits = [h for path in SCRIPTS if path.name not in BARE_LOOPS for h in _hits(path, r"torch\.optim\.\w+\(")]
    assert not hits, f"{hits}: train through the module's optimizer (a Trainer, hih.bench.timed_fit)"


def test_core_count_is_asked_in_one_place():
    allowed = {ROOT / "src" / "hih" / "bench.py", Path(__file__).resolve()}
    hits = [h for path in PYTHON if path not in allowed for h in _hits(path, r"sched_getaffinity|os\.cpu_count")]
    assert not hits, f"{hits}: use hih.bench.usable_cores"


def test_uniform_offset_constants_are_written_once():
    """0.7652 / 0.3826 (and their roundings) as number literals only where they are defined."""
    own = ROOT / "src" / "hih" / "codecs" / "common.py"
    values = (MEAN_DIST_TO_CORNER, MEAN_DIST_TO_CENTRE)
    hits = []
    for path in PYTHON:
        if path == own:
            continue
        for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
            if tok.type == tokenize.NUMBER and "." in tok.string:
                v = float(tok.string)
                if any(math.isclose(v, c, abs_tol=0.0015) for c in values):
                    hits.append(f"{path.relative_to(ROOT)}:{tok.start[0]}: {tok.string}")
    assert not hits, f"{hits}: import MEAN_DIST_TO_CORNER / MEAN_DIST_TO_CENTRE from hih.codecs.common"
    # The closed form against the mean over a fine grid of the unit square (midpoint rule).
    grid = (np.arange(600) + 0.5) / 600
    x, y = np.meshgrid(grid, grid)
    assert np.hypot(x, y).mean() == pytest.approx(MEAN_DIST_TO_CORNER, abs=1e-5)
    assert np.hypot(x - 0.5, y - 0.5).mean() == pytest.approx(MEAN_DIST_TO_CENTRE, abs=1e-5)
