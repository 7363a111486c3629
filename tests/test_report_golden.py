"""hih-report's output pinned byte for byte: two hand-made sweeps (one seed per point; three seeds per
point) whose metrics hold every key family (integer-only at both anchors, head metrics and gains,
re-decodes, subsets, a NaN), and the console tables of one run. The golden files under
tests/data/report_golden/ were written by the report before it was split into parts; regenerate them
only for an intended change of the report: ``python tests/test_report_golden.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml
from rich.console import Console

from hih.analysis.report import expected_overrides, write_report
from hih.analysis.results import print_results

GOLDEN = Path(__file__).parent / "data" / "report_golden"
SUBSETS = ("pose", "blur", "extra")  # two of WFLW's, in the layout's order, and one it does not know
ROOT = "<root>"


def _family(out: dict, stem: str, value: float, subsets=SUBSETS) -> None:
    """``test/<stem>`` and its subsets, values spaced so that rounding shows."""
    out[f"test/{stem}"] = value
    for k, s in enumerate(subsets):
        out[f"test/{stem}/{s}"] = value + 0.37 * (k + 1)


def metrics_of(model: str, x: float) -> dict[str, float]:
    out = {"val/nme": x, "val/nme_integer": x + 1}  # other stages: left out of the test report
    for suffix, bump in (("", 0.0), ("_integer", 0.5), ("_integer_corner", 1.25)):
        if suffix and model == "baseline":
            continue
        _family(out, f"nme{suffix}", x + bump)
        _family(out, f"fr_10{suffix}", 2 * x + bump)
        _family(out, f"auc_10{suffix}", 0.5 - x / 100 - bump / 10)
    if model.startswith("hih"):
        _family(out, "decimal_acc", 0.25 + x / 1000)
        _family(out, "decimal_gain", 0.5)
    if model == "wov":
        _family(out, "offset_err", 0.1234 + x / 1000)
        _family(out, "offset_gain", 0.5)
    if model == "baseline":
        for method, delta in (("dark", -0.4), ("wsm", -0.25)):
            _family(out, f"nme@{method}", x + delta)
            _family(out, f"fr_10@{method}", 2 * x + delta)
            _family(out, f"auc_10@{method}", 0.5 - (x + delta) / 100)
    out["test/nme/blur"] = float("nan") if model == "wov" else out["test/nme/blur"]  # a subset without faces
    return out


def _job(root: Path, num: int, overrides: list[str], config: dict, metrics: dict | None, status: dict | None) -> None:
    job = root / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"job": {"num": num}}}))
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))
    if status is not None:
        (job / "status.json").write_text(json.dumps(status))


def _multirun_yaml(root: Path, params: dict[str, str]) -> None:
    hydra = {
        "sweeper": {
            "_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
            "max_batch_size": None,
            "params": params,
        },
        "overrides": {"task": ["trainer.max_epochs=1"]},
    }
    (root / "multirun.yaml").write_text(yaml.safe_dump({"hydra": hydra}))


def make_single_seed(root: Path) -> Path:
    """One job per grid point (model x decimal size): baseline, hih_c at 4 and 8, wov, a failed, a
    running and a no-metrics job, the rest not started."""
    root.mkdir(parents=True)
    models, sizes = ("baseline", "hih_c", "wov", "hih_t", "hih_l", "wom", "dark"), (4, 8)
    outcome = {
        ("baseline", 4): 5.123,
        ("hih_c", 4): 4.456,
        ("hih_c", 8): 4.2,
        ("wov", 4): 4.789,
        ("hih_t", 4): "failed",
        ("hih_l", 4): "running",
        ("wom", 8): "completed",
    }
    _multirun_yaml(root, {"model": ",".join(models), "model.decimal_size": "4,8"})
    grid = expected_overrides(root)
    assert grid is not None and len(grid) == len(models) * len(sizes)
    for num, overrides in enumerate(grid):
        values = dict(o.partition("=")[::2] for o in overrides)
        model, size = values["model"], int(values["model.decimal_size"])
        x = outcome.get((model, size))
        if x is None:
            continue  # not started
        config = {
            "seed": 42,
            "model": {"name": model, "decimal_size": size, "stacks": 1},
            "data": {"name": "synthetic", "layout": "wflw"},
        }
        metrics = metrics_of(model, x) if isinstance(x, float) else None
        status = None
        if x == "failed":
            status = {"status": "failed", "error": "ValueError: a | pipe\nand a line"}
        elif x == "running":
            status = {"status": "running", "started": "t0", "host": "n1", "pid": 7}
        elif x == "completed":
            status = {"status": "completed"}
        _job(root, num, overrides, config, metrics, status)
    return root


def make_seeds(root: Path) -> Path:
    """baseline, hih_c and wov over seeds 1..3 under two label sets; one failed, one not started."""
    root.mkdir(parents=True)
    models, labels, seeds = ("baseline", "hih_c", "wov"), ("ours", "authors"), (1, 2, 3)
    _multirun_yaml(root, {"model": ",".join(models), "labels": ",".join(labels), "seed": "1,2,3"})
    num = -1
    for label in labels:
        for model in models:
            for seed in seeds:
                num += 1
                if (model, label, seed) == ("wov", "ours", 3):
                    continue  # not started
                x = 5.0 + 0.137 * seed + (0.05 if label == "authors" else 0.0) - 0.61 * models.index(model)
                x += 0.011 * seed * seed * models.index(model)
                failed = (model, label, seed) == ("hih_c", "authors", 2)
                _job(
                    root,
                    num,
                    [f"model={model}", f"labels={label}", f"seed={seed}", "trainer.max_epochs=1"],
                    {"seed": seed, "model": {"name": model}, "data": {"name": "synthetic", "layout": "wflw"}},
                    None if failed else metrics_of(model, x),
                    {"status": "failed", "error": "RuntimeError: boom"} if failed else None,
                )
    return root


def console_tables(metrics: dict[str, float]) -> str:
    console = Console(record=True, width=240, force_terminal=False, color_system=None)
    print_results(metrics, console=console)
    return console.export_text()


def render(tmp: Path) -> dict[str, str]:
    """Every text file the reports write (paths under ``tmp`` as ``<root>``), and the console tables."""
    out: dict[str, str] = {}
    for name, make in (("single", make_single_seed), ("seeds", make_seeds)):
        root = make(tmp / name)
        report = write_report(root, plots=True)
        for path in sorted(report.markdown.parent.iterdir()):
            if path.suffix in (".md", ".csv"):
                out[f"{name}/{path.name}"] = path.read_text().replace(str(tmp), ROOT)
        out[f"{name}/plots.txt"] = "\n".join(sorted(report.plots)) + "\n"
    for model in ("baseline", "hih_c", "wov"):
        out[f"console/{model}.txt"] = console_tables(metrics_of(model, 4.321))
    return out


def test_reports_match_the_golden_files(tmp_path):
    rendered = render(tmp_path)
    golden = {str(p.relative_to(GOLDEN)): p.read_text() for p in sorted(GOLDEN.rglob("*")) if p.is_file()}
    assert sorted(rendered) == sorted(golden)
    for name, text in rendered.items():
        assert text == golden[name], f"{name} differs from tests/data/report_golden/{name}"


if __name__ == "__main__":  # regenerate the golden files
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for name, text in render(Path(tmp)).items():
            path = GOLDEN / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    sys.exit(0)
