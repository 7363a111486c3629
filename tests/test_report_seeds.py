"""hih-report over seeds: a hand-made multirun of 2 methods x 2 label conventions x 3 seeds, with a
failed seed, a seed never started and a baseline re-decoded by DARK; the numbers against NumPy / SciPy."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from hih.analysis.report import (
    Difference,
    collect_runs,
    compensation_table,
    group_runs,
    reference_rows,
    write_report,
)

SEEDS = (1, 2, 3)
MODELS = ("baseline", "hih_c")
LABELS = ("ours", "authors")
FAILED = ("hih_c", "authors", 3)  # status.json says failed
NOT_STARTED = ("hih_c", "ours", 2)  # in multirun.yaml's grid, no job folder


def nme_of(model: str, labels: str, seed: int) -> float:
    """Known values: HIH_C clearly better than the baseline under ours (-1.0 +- small), about equal under authors."""
    rng = np.random.default_rng(100 * seed + len(labels))
    base = 5.0 + 0.3 * rng.standard_normal()
    if model == "baseline":
        return base
    if labels == "ours":
        return base - 1.0 + 0.02 * rng.standard_normal()
    return base + 0.2 * rng.standard_normal()


def make_seed_multirun(root: Path) -> Path:
    root.mkdir(parents=True)
    hydra = {
        "sweeper": {
            "_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
            "max_batch_size": None,
            "params": {"model": ",".join(MODELS), "labels": ",".join(LABELS), "seed": ",".join(map(str, SEEDS))},
        },
        "overrides": {"task": ["trainer.max_epochs=1"]},
    }
    (root / "multirun.yaml").write_text(yaml.safe_dump({"hydra": hydra}))
    num = -1
    for labels in LABELS:  # Hydra's job order: the swept keys sorted, the last one varying fastest
        for model in MODELS:
            for seed in SEEDS:
                num += 1
                if (model, labels, seed) == NOT_STARTED:
                    continue
                job = root / str(num)
                (job / ".hydra").mkdir(parents=True)
                overrides = [f"model={model}", f"labels={labels}", f"seed={seed}", "trainer.max_epochs=1"]
                (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
                (job / ".hydra" / "config.yaml").write_text(
                    yaml.safe_dump({"seed": seed, "model": {"name": model}, "data": {"name": "synthetic"}})
                )
                (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"job": {"num": num}}}))
                if (model, labels, seed) == FAILED:
                    (job / "status.json").write_text(json.dumps({"status": "failed", "error": "RuntimeError: boom"}))
                    continue
                nme = nme_of(model, labels, seed)
                metrics = {"test/nme": nme, "test/fr_10": 2 * nme, "test/auc_10": 0.5 - nme / 100}
                if model == "hih_c":
                    metrics["test/nme_integer"] = nme + 0.5 + 0.1 * seed
                if model == "baseline":
                    metrics.update(
                        {"test/nme@dark": nme - 0.4 - 0.01 * seed, "test/fr_10@dark": 2 * nme, "test/auc_10@dark": 0.4}
                    )
                (job / "metrics.json").write_text(json.dumps(metrics))
    return root


def expected(model: str, labels: str) -> dict[int, float]:
    return {s: nme_of(model, labels, s) for s in SEEDS if (model, labels, s) not in (FAILED, NOT_STARTED)}


def test_rows_group_seeds_and_count_the_missing(tmp_path):
    rows = group_runs(collect_runs(make_seed_multirun(tmp_path / "m")))
    assert [r.label for r in rows] == [
        "model=baseline labels=ours",
        "model=baseline labels=ours → dark (re-decode)",
        "model=hih_c labels=ours",
        "model=baseline labels=authors",
        "model=baseline labels=authors → dark (re-decode)",
        "model=hih_c labels=authors",
    ]
    by = {r.label: r for r in rows}
    assert [r.status for r in by["model=hih_c labels=authors"].runs] == ["completed", "completed", "failed"]
    assert [r.status for r in by["model=hih_c labels=ours"].runs] == ["completed", "not started", "completed"]
    assert by["model=baseline labels=ours → dark (re-decode)"].model == "dark (re-decode of baseline)"
    for model, labels in [(m, lab) for m in MODELS for lab in LABELS]:
        values = np.array(list(expected(model, labels).values()))
        st = by[f"model={model} labels={labels}"].stats("test/nme")
        assert st.n == len(values)
        assert st.mean == pytest.approx(np.mean(values), abs=1e-12)
        assert st.std == pytest.approx(np.std(values, ddof=1), abs=1e-12)


@pytest.mark.parametrize("labels", LABELS)
def test_paired_difference_to_the_baseline_of_the_same_labels(tmp_path, labels):
    rows = group_runs(collect_runs(make_seed_multirun(tmp_path / "m")))
    refs = reference_rows(rows)
    i = next(k for k, r in enumerate(rows) if r.label == f"model=hih_c labels={labels}")
    assert refs[i].label == f"model=baseline labels={labels}"
    diff = Difference.paired(rows[i].values("test/nme"), refs[i].values("test/nme"))
    mine, base = expected("hih_c", labels), expected("baseline", labels)
    seeds = [s for s in mine if s in base]  # paired by seed: a seed missing on either side drops out
    a, b = np.array([mine[s] for s in seeds]), np.array([base[s] for s in seeds])
    test = stats.ttest_rel(a, b)
    low, high = test.confidence_interval(0.95)
    assert diff.n == len(seeds) == 2
    assert diff.mean == pytest.approx(np.mean(a - b), abs=1e-12)
    assert (diff.low, diff.high) == pytest.approx((low, high), abs=1e-9)
    assert diff.significant == (low > 0 or high < 0)


def test_the_redecode_row_pairs_with_its_own_training(tmp_path):
    rows = group_runs(collect_runs(make_seed_multirun(tmp_path / "m")))
    refs = reference_rows(rows)
    i = next(k for k, r in enumerate(rows) if r.label == "model=baseline labels=ours → dark (re-decode)")
    assert refs[i] is rows[i - 1]
    diff = Difference.paired(rows[i].values("test/nme"), refs[i].values("test/nme"))
    d = np.array([-0.4 - 0.01 * s for s in SEEDS])
    low, high = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    assert diff.n == 3 and diff.mean == pytest.approx(d.mean(), abs=1e-9)
    assert (diff.low, diff.high) == pytest.approx((low, high), abs=1e-9) and diff.significant


def test_a_chosen_reference_and_a_wrong_one(tmp_path):
    rows = group_runs(collect_runs(make_seed_multirun(tmp_path / "m")))
    refs = reference_rows(rows, "model=hih_c")
    assert [refs[k].label if refs[k] else None for k in range(len(rows))][:2] == ["model=hih_c labels=ours"] * 2
    with pytest.raises(ValueError, match="matches no row"):
        reference_rows(rows, "model=wov")


def test_report_shows_mean_std_n_and_the_marked_interval(tmp_path):
    root = make_seed_multirun(tmp_path / "m")
    report = write_report(root)
    text = report.markdown.read_text()
    base = np.array(list(expected("baseline", "ours").values()))
    assert f"{base.mean():.2f} ± {base.std(ddof=1):.2f}" in text
    assert "2/3 (1 failed)" in text and "2/3 (1 not started)" in text and "(reference)" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("| model=hih_c labels=ours |"))
    assert line.rstrip(" |").endswith("model=baseline labels=ours") and " *" in line  # -1.0 NME: outside the noise
    with open(report.csvs["rows"]) as f:
        table = {r["run"]: r for r in csv.DictReader(f)}
    row = table["model=hih_c labels=authors"]
    values = np.array(list(expected("hih_c", "authors").values()))
    assert float(row["test/nme mean"]) == pytest.approx(values.mean()) and int(row["test/nme n"]) == 2
    assert (row["completed"], row["jobs"]) == ("2", "3")
    assert report.plots["rows"].is_file() and "Every job" in text  # every job is listed, failed ones too


@pytest.mark.slow  # a hih-train multirun and hih-report, subprocesses
def test_a_seeded_multirun_end_to_end(tmp_path):
    from cli import cli_env, run_cli
    from tiny import tiny  # tests/tiny.py

    env = cli_env()
    sweep = tmp_path / "sweep"
    overrides = [o for o in tiny(tmp_path / "data") if not o.startswith("paths.")] + [
        "logger=csv",
        f"paths.data_dir={tmp_path / 'data'}",
    ]
    run_cli(
        "hih-train",
        [
            "-m",
            "sweep=seeds",
            "sweep.seeds=[1,2]",
            "model=baseline",
            *overrides,
            f"hydra.sweep.dir={sweep}",
        ],
        env=env,
        cwd=tmp_path,
        timeout=400,
    )
    configs = [yaml.safe_load((sweep / str(n) / "csv" / "hparams.yaml").read_text()) for n in (0, 1)]
    assert [c["seed"] for c in configs] == [1, 2]
    assert configs[0]["wandb_group"] == configs[1]["wandb_group"]  # one grid point, one W&B group
    run_cli("hih-report", [f"multirun_dir={sweep}"], env=env, cwd=tmp_path, timeout=120)
    with open(sweep / "report" / "rows.csv") as f:
        rows = {r["run"]: r for r in csv.DictReader(f)}
    assert rows["baseline"]["completed"] == "2" and rows["baseline → dark (re-decode)"]["redecode"] == "dark"
    values = [json.loads((sweep / str(n) / "metrics.json").read_text())["test/nme@dark"] for n in (0, 1)]
    assert float(rows["baseline → dark (re-decode)"]["test/nme mean"]) == pytest.approx(np.mean(values))


def test_compensation_table_pairs_the_integer_heatmap_with_the_baselines_nme(tmp_path):
    rows = group_runs(collect_runs(make_seed_multirun(tmp_path / "m")))
    _, table = compensation_table(rows, reference_rows(rows))
    line = next(r for r in table if r[0] == "model=hih_c labels=authors")
    mine, base = expected("hih_c", "authors"), expected("baseline", "authors")
    integer = {s: v + 0.5 + 0.1 * s for s, v in mine.items()}
    gain = np.array([integer[s] - mine[s] for s in mine])
    assert line[5] == f"{gain.mean():.2f} ± {gain.std(ddof=1):.2f}"
    d = np.array([integer[s] - base[s] for s in mine])
    low, high = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    assert line[7].startswith(f"{d.mean():+.2f} [{low:+.2f}, {high:+.2f}]")
    assert next(r for r in table if r[0] == "model=baseline labels=authors")[4:6] != ["-", "-"]  # its own argmax


def test_seeds_added_later_join_their_grid_points(tmp_path):
    # A second sweep with sweep.seeds=[4] inside the first one's folder: the same rows, one more seed.
    root = make_seed_multirun(tmp_path / "m")
    for num, (model, labels) in enumerate([(m, lab) for lab in LABELS for m in MODELS]):
        job = root / "seed4" / str(num)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(
            yaml.safe_dump(["seed=4", f"model={model}", f"labels={labels}", "sweep.seeds=[4]", "trainer.max_epochs=1"])
        )
        (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"seed": 4, "model": {"name": model}}))
        (job / "metrics.json").write_text(json.dumps({"test/nme": 6.0}))
    rows = group_runs(collect_runs(root))
    assert len(rows) == 6 and all(len(r.runs) == 4 for r in rows)
    assert rows[0].label == "model=baseline labels=ours" and sorted(rows[0].seeds) == ["1", "2", "3", "4"]
