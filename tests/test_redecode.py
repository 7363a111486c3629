"""One training, every decoder: a plain-heatmap run logs the test metrics under each other decoder of
its network output (``test/<metric>@<method>``), equal to ``hih-eval model=<method>`` on its checkpoint."""

from __future__ import annotations

import json

import pytest

from hih.evaluation import redecoders
from hih.methods import build_codec
from tiny import N_TEST, N_TRAIN, tiny


def test_a_plain_heatmap_is_redecoded_by_every_other_heatmap_method():
    codec = build_codec("baseline", input_size=64, heatmap_size=16, sigma=2.0, integer_target="cell")
    others = redecoders(codec)
    assert sorted(others) == ["dark", "soft_argmax", "wsm"]
    for name, other in others.items():
        assert other.decoder == ("argmax" if name == "baseline" else name)
        # The run's own geometry and label settings, only the decoder differs.
        assert (other.input_size, other.heatmap_size, other.sigma, other.integer_target) == (64, 16, 2.0, "cell")
    assert sorted(redecoders(build_codec("dark", input_size=64, heatmap_size=16))) == ["baseline", "soft_argmax", "wsm"]


def test_methods_sharing_one_codec_are_not_redecodes():
    # HIH_C / HIH_T / HIH_L write the same output and decode it with the same codec: nothing to re-decode.
    assert redecoders(build_codec("hih_c", input_size=64, heatmap_size=16)) == {}
    assert redecoders(build_codec("wov", input_size=64, heatmap_size=16)) == {}


@pytest.mark.slow
def test_the_redecodes_equal_hih_eval_with_that_model(tmp_path):
    from hih.data.synthetic import ensure_synthetic
    from hih.pipeline import compose, evaluate, train

    ensure_synthetic(tmp_path / "data" / "synthetic", n_train=N_TRAIN, n_test=N_TEST, workers=1, progress=False)
    overrides = tiny(tmp_path / "data", "model=baseline")
    run = tmp_path / "run"
    metrics = train(compose("train", overrides, output_dir=run))
    assert json.loads((run / "metrics.json").read_text()) == pytest.approx(metrics, rel=0, abs=1e-6)
    (ckpt,) = sorted((run / "checkpoints").glob("epoch_*.ckpt"))
    for method in ("dark", "wsm", "soft_argmax"):
        keys = {k for k in metrics if f"@{method}" in k}
        assert {
            f"test/nme@{method}",
            f"test/fr_10@{method}",
            f"test/auc_10@{method}",
            f"test/nme@{method}/pose",
        } <= keys
        evaluated = evaluate(
            compose("eval", [*overrides, f"model={method}", f"ckpt_path={ckpt}"], output_dir=tmp_path / method)
        )
        # hih-eval model=<method> decodes the same weights with that method's codec as its own decode.
        for key in keys:
            assert metrics[key] == pytest.approx(evaluated[key.replace(f"@{method}", "")], rel=0, abs=1e-5), key
        # ... and re-decodes with the baseline's argmax in turn.
        assert evaluated["test/nme@baseline"] == pytest.approx(metrics["test/nme"], rel=0, abs=1e-5)
    assert metrics["test/nme@dark"] != metrics["test/nme"]  # the decoders do differ on this network


def test_the_console_shows_the_redecodes_in_a_table_of_their_own():
    from hih.analysis.results import results_tables

    metrics = {
        "test/nme": 4.0,
        "test/fr_10": 1.0,
        "test/auc_10": 0.5,
        "test/nme/pose": 5.0,
        "test/nme@dark": 3.5,
        "test/fr_10@dark": 1.0,
        "test/auc_10@dark": 0.55,
        "test/nme@dark/pose": 4.5,
        "test/nme@wsm": 3.9,
    }
    main, redecoded = results_tables(metrics)
    assert [c.header for c in main.columns] == ["subset", "nme", "fr_10", "auc_10"]  # no re-decode columns
    assert [c.header for c in redecoded.columns] == ["subset", "nme@dark", "nme@wsm"]


def test_redecode_columns_sort_after_the_runs_own():
    from hih.analysis.results import column_order

    names = ["nme@wsm", "auc_10", "fr_10@dark", "nme", "decimal_gain", "nme@dark", "fr_10"]
    assert sorted(names, key=column_order) == [
        "nme",
        "fr_10",
        "auc_10",
        "decimal_gain",
        "nme@dark",
        "nme@wsm",
        "fr_10@dark",
    ]
