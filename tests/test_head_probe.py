"""The head probe: a head trained on cached features learns where it can (positive control on ideal
features), and the study runs end to end from a checkpoint with tiny widths."""

from __future__ import annotations

import json

import pytest
import torch
from tests.tiny import tiny

from hih.analysis.head_probe import FeatureCache, HeadSetup, gradient_at_last_layer, last_layer, train_head
from hih.analysis.head_probe_study import parse_spec, run_study, t_interval
from hih.codecs import HIHCodec
from hih.methods import build_net
from hih.models.heads import HIHLHead

N, S, D = 4, 64, 4


def _ideal_cache(codec: HIHCodec, faces: int, seed: int) -> FeatureCache:
    """Features that hold every landmark's sub-cell position: its ideal integer heatmap (a Gaussian at u)."""
    g = torch.Generator().manual_seed(seed)
    landmarks = torch.rand(faces, N, 2, generator=g) * (S - 16) + 8
    landmarks[:, 1] = landmarks[:, 0] + torch.tensor([12.0, 0.0])  # a stable normalising distance
    heatmap = HIHCodec(S, S // 4, decimal_size=D, integer_target="subpixel").encode(landmarks)["heatmap"]
    return FeatureCache(heatmap.clone(), codec.encode(landmarks)["heatmap"], landmarks)


def test_hih_l_learns_on_ideal_features_positive_control():
    codec = HIHCodec(S, S // 4, decimal_size=D, decimal_decode="centre")
    train, test = _ideal_cache(codec, 256, 0), _ideal_cache(codec, 64, 1)
    torch.manual_seed(0)
    setup = HeadSetup("hih_l", HIHLHead(N, N, D, width=32, reduced=4), codec, {"decimal_loss": "cls"}, "decimal")
    result = train_head(setup, train, test, (0, 1), steps=300, seed=0, lr=3e-3, eval_every=300)
    assert result.chance == 1 / D**2
    assert result.test_signal > 3 * result.chance and result.gain > 0
    assert result.curve and result.curve[-1][0] == 300 and result.grad_last_layer > 0
    # Untrained, the same head is at chance with no gain: the measurement itself is not what learns.
    torch.manual_seed(0)
    fresh = HeadSetup("hih_l", HIHLHead(N, N, D, width=32, reduced=4), codec, {"decimal_loss": "cls"}, "decimal")
    untrained = train_head(fresh, train, test, (0, 1), steps=0, seed=0)
    assert untrained.test_signal < 2 * untrained.chance and abs(untrained.gain) < result.gain


def test_gradient_at_last_layer_scales_with_the_loss_weight():
    codec = HIHCodec(S, S // 4, decimal_size=D)
    cache = _ideal_cache(codec, 64, 0)
    net = build_net(head="hih_c", num_landmarks=N, channels=N, input_size=S, decimal_size=D, width=8)
    setup = HeadSetup("hih_c", net.head, codec, {"decimal_loss": "l2", "head": 1.0}, "decimal")
    assert last_layer(setup.head) is setup.head.head[-1]
    full = gradient_at_last_layer(setup, cache, {"decimal_loss": "l2", "head": 1.0}, batches=3)
    small = gradient_at_last_layer(setup, cache, {"decimal_loss": "l2", "head": 0.05}, batches=3)
    assert full > 0 and small == pytest.approx(0.05 * full, rel=1e-4)


def test_t_interval_and_specs():
    mean, half = t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.303 * 1.0 / 3**0.5, rel=1e-4)
    assert parse_spec("hih_c:cls") == ("hih_c", ["model.loss.decimal_loss=cls"]) and parse_spec("wom") == ("wom", [])


@pytest.mark.slow  # composes configs and writes a synthetic set
def test_study_runs_from_a_checkpoint(tmp_path):
    overrides = [*tiny(tmp_path / "data"), "recipe=authors_release", "model.head_width=8", "model.channels=8"]
    overrides.append("++model.decimal_size=4")  # 16x16 heatmap: the unpadded pool needs two halvings (16 -> 7 -> 4)
    overrides = [o for o in overrides if not o.startswith(("trainer.", "plot_samples"))]
    net = build_net(head="hih_l", num_landmarks=98, channels=8, input_size=64, decimal_size=4, width=8)
    ckpt = tmp_path / "backbone.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, ckpt)
    summary = run_study(ckpt, ["hih_c:cls", "wom"], [0, 1], 3, tmp_path / "probe", overrides, log=lambda s: None)
    rows = {r["spec"]: r for r in summary["table"]}
    assert set(rows) == {"hih_c:cls", "wom"} and rows["hih_c:cls"]["seeds"] == 2
    assert rows["hih_c:cls"]["chance"] == 1 / 16 and rows["wom"]["signal"] == "offset_err"
    assert {g["decimal_loss"] for g in summary["gradients"]} == {"l2", "cls"}
    assert json.loads((tmp_path / "probe" / "probe.json").read_text())["table"] == summary["table"]
    assert "hih_c:cls" in (tmp_path / "probe" / "probe.md").read_text()
    # A second study reuses the cached features.
    assert (tmp_path / "probe" / "features" / "train.pt").is_file()


def test_multirun_table_groups_seeds_and_counts_missing_runs(tmp_path):
    from hih.analysis.head_probe_study import multirun_table

    def job(i: int, run: str, seed: int, acc: float | None):
        (tmp_path / str(i) / ".hydra").mkdir(parents=True)
        (tmp_path / str(i) / ".hydra" / "overrides.yaml").write_text(
            f"- seed={seed}\n- +sweep/decimal_recipe={run}\n- sweep=decimal_recipe\n"
        )
        (tmp_path / str(i) / ".hydra" / "config.yaml").write_text(f"seed: {seed}\n")  # as every Hydra job has
        if acc is not None:
            (tmp_path / str(i) / "metrics.json").write_text(json.dumps({"test/decimal_acc": acc, "test/nme": 3.0}))

    for i, (run, seed, acc) in enumerate([("hih_c", 0, 0.1), ("hih_c", 1, 0.2), ("hih_c", 2, 0.3), ("hih_t", 0, None)]):
        job(i, run, seed, acc)
    rows = {r["run"]: r for r in multirun_table([tmp_path])}
    assert rows["hih_c"]["seeds"] == 3 and rows["hih_c"]["test/decimal_acc"] == pytest.approx(0.2)
    assert rows["hih_c"]["test/decimal_acc_ci"] == pytest.approx(4.303 * 0.1 / 3**0.5, rel=1e-4)
    assert rows["hih_t"] == {"run": "hih_t", "seeds": 0, "missing": 1}


def test_seed_curves_average_each_runs_seeds_per_step(tmp_path):
    """Each run's validation ladder over its seeds: the mean and the seeds' range per step (a seed that
    stopped early counts where it reached); the markdown names each head's own signal; the figure draws."""
    from hih.analysis.head_probe_study import multirun_markdown, multirun_table
    from hih.analysis.seed_curves import seed_curves, seed_curves_figure

    ladders = {  # (run, seed): [(csv step, val/decimal_acc or val/offset_err)]
        ("hih_c", 0): [(99, 0.01), (199, 0.03)],
        ("hih_c", 1): [(99, 0.03), (199, 0.05)],
        ("hih_c", 2): [(99, 0.02)],
        ("wom", 0): [(99, 0.36), (199, 0.30)],
    }
    for i, ((run, seed), ladder) in enumerate(ladders.items()):
        job = tmp_path / str(i)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- seed={seed}\n- +sweep/decimal_recipe={run}\n")
        (job / ".hydra" / "config.yaml").write_text(f"seed: {seed}\n")
        key = "val/offset_err" if run == "wom" else "val/decimal_acc"
        (job / "csv").mkdir()
        (job / "csv" / "metrics.csv").write_text(
            f"step,{key},train/loss\n" + "".join(f"{s},{v},\n{s},,0.5\n" for s, v in ladder)
        )
        test = {"test/nme": 3.0 + seed, "test/nme_integer": 3.5}
        test.update({"test/offset_err": 0.3, "test/offset_gain": 0.1} if run == "wom" else {"test/decimal_acc": 0.02})
        (job / "metrics.json").write_text(json.dumps(test))
    curves = seed_curves([tmp_path])
    assert [p[0] for p in curves["hih_c"]["val/decimal_acc"]] == [100, 200]  # CSV step + 1: steps done
    step100, step200 = curves["hih_c"]["val/decimal_acc"]
    assert step100[1:] == pytest.approx((0.02, 0.01, 0.03)) and step200[1:] == pytest.approx((0.04, 0.03, 0.05))
    assert set(curves["wom"]) == {"val/offset_err"} and curves["wom"]["val/offset_err"][1][1] == pytest.approx(0.30)
    markdown = multirun_markdown(multirun_table([tmp_path]), chance=1 / 64)
    hih_c = next(line for line in markdown.splitlines() if line.startswith("| hih_c |"))
    assert "| 3 (0) |" in hih_c and "0.0200 ± 0.0000 (1.28x)" in hih_c
    wom = next(line for line in markdown.splitlines() if line.startswith("| wom |"))
    assert "0.3000 |" in wom and "+0.100 |" in wom and "nan" not in markdown  # one seed: no interval
    fig = seed_curves_figure(curves, chance=1 / 64)
    acc_axis, offset_axis = fig.axes[:2]
    assert [line.get_label() for line in acc_axis.lines][:1] == ["hih_c"]
    assert [line.get_label() for line in offset_axis.lines][:1] == ["wom"]
    only_hih_c = seed_curves_figure({"hih_c": curves["hih_c"]}, chance=1 / 64)
    assert [t.get_text() for t in only_hih_c.axes[1].texts] == ["no run logs this metric"]


def test_multirun_table_keeps_other_grid_points_of_one_run_file_apart(tmp_path):
    """Two multiruns of the same run file at different budgets are two rows, named by what differs,
    not one row averaging 300- and 2,000-step seeds."""
    from hih.analysis.head_probe_study import multirun_table

    for folder, steps, acc in (("short", None, 0.1), ("long", 2000, 0.3)):
        job = tmp_path / folder / "0"
        (job / ".hydra").mkdir(parents=True)
        extra = f"- trainer.max_steps={steps}\n" if steps else ""
        (job / ".hydra" / "overrides.yaml").write_text(f"- seed=0\n- +sweep/decimal_recipe=hih_c\n{extra}")
        (job / ".hydra" / "config.yaml").write_text("seed: 0\n")
        (job / "metrics.json").write_text(json.dumps({"test/decimal_acc": acc}))
    rows = multirun_table([tmp_path / "short", tmp_path / "long"])
    assert [(r["seeds"], r["test/decimal_acc"]) for r in rows] == [(1, 0.1), (1, 0.3)]
    assert rows[0]["run"] != rows[1]["run"] and "trainer.max_steps=2000" in rows[1]["run"]
