"""NME / FR / AUC / CED against hand computations on tiny arrays."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from hih.metrics import FaceAlignmentMetrics, auc_from_errors, ced, failure_rate, per_sample_nme, threshold_suffix


def _faces_with_errors(errors_percent: list[float], d: float = 50.0, n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets whose landmarks 0 and 1 are ``d`` apart, predictions shifted so each face's NME is as given."""
    b = len(errors_percent)
    target = torch.zeros(b, n, 2)
    target[:, 0] = torch.tensor([10.0, 20.0])
    target[:, 1] = torch.tensor([10.0 + d, 20.0])
    target[:, 2:] = torch.tensor([30.0, 40.0])
    shift = torch.tensor(errors_percent) / 100.0 * d  # every landmark moves by the same distance
    pred = target.clone()
    pred[..., 1] += shift[:, None]
    return pred, target


def test_per_sample_nme_by_hand():
    # Face 0: eyes at (0,0) and (4,0) -> d = 4; errors of the 3 landmarks: 0, 0, 5 (a 3-4-5 shift).
    # NME = (0 + 0 + 5) / 3 / 4 * 100 = 41.666...%
    # Face 1: eyes at (0,0) and (0,10) -> d = 10; errors 1, 1, 1 -> NME = 10%.
    target = torch.tensor([[[0.0, 0.0], [4.0, 0.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 10.0], [5.0, 5.0]]])
    pred = target.clone()
    pred[0, 2] += torch.tensor([3.0, 4.0])
    pred[1] += torch.tensor([0.0, 1.0])
    nme = per_sample_nme(pred, target, (0, 1))
    assert nme.shape == (2,)
    assert nme[0].item() == pytest.approx(5 / 3 / 4 * 100)
    assert nme[1].item() == pytest.approx(10.0)
    # Normalising by the *target*, not the prediction: moving the predicted eyes changes nothing in d.
    assert per_sample_nme(pred, target, (1, 0)).tolist() == pytest.approx(nme.tolist())


def test_per_sample_nme_errors():
    t = torch.zeros(2, 3, 2)
    with pytest.raises(ValueError, match="zero"):
        per_sample_nme(t, t, (0, 1))
    with pytest.raises(ValueError, match=r"\(B, N, 2\)"):
        per_sample_nme(torch.zeros(2, 3), torch.zeros(2, 3), (0, 1))
    with pytest.raises(ValueError, match="distinct indices"):
        per_sample_nme(t, t, (0, 5))


def test_fr_and_auc_by_hand():
    # Three faces with NME 2%, 6%, 12%; threshold 10%.
    errors = torch.tensor([2.0, 6.0, 12.0])
    # FR: one face of three above 10% -> 33.33%.
    assert failure_rate(errors, 0.10).item() == pytest.approx(100 / 3)
    # AUC by hand: the CED is 0 on [0,2), 1/3 on [2,6), 2/3 on [6,10]; area = 4*(1/3) + 4*(2/3) = 4;
    # normalised by 10 -> 0.4.
    assert auc_from_errors(errors, 0.10).item() == pytest.approx(0.4)
    # The same area integrated from the sorted errors as a step function, written out generically.
    sorted_e = sorted(errors.tolist()) + [10.0]
    area = sum((min(sorted_e[i + 1], 10.0) - min(sorted_e[i], 10.0)) * (i + 1) / 3 for i in range(3))
    assert auc_from_errors(errors, 0.10).item() == pytest.approx(area / 10.0)
    # A coarse-sampled CED (plots' trapezoid) agrees to its resolution only.
    t, f = ced(errors, 10.0, steps=100001)
    assert torch.trapezoid(f, t).item() / 10.0 == pytest.approx(0.4, abs=1e-3)


def test_auc_extremes():
    assert auc_from_errors(torch.zeros(5), 0.10).item() == pytest.approx(1.0)
    assert auc_from_errors(torch.tensor([10.0, 11.0, 50.0]), 0.10).item() == pytest.approx(0.0)
    assert failure_rate(torch.tensor([10.0, 11.0, 50.0]), 0.10).item() == pytest.approx(200 / 3)  # 10.0 is not > 10
    assert math.isnan(auc_from_errors(torch.zeros(0), 0.1).item())


def test_threshold_suffix():
    assert threshold_suffix(0.10) == "10"
    assert threshold_suffix(0.08) == "8"
    assert threshold_suffix(0.07) == "7"
    assert threshold_suffix(0.075) == "7p5"


def test_metric_full_and_subsets_across_updates():
    metric = FaceAlignmentMetrics(norm_pair=(0, 1), subset_names=("pose", "blur", "empty"), threshold=0.10)
    errs = [2.0, 6.0, 12.0, 4.0]
    pred, target = _faces_with_errors(errs)
    subsets = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 0]], dtype=torch.bool)
    # Two updates (as two batches) must equal one.
    metric.update(pred[:3], target[:3], subsets[:3])
    metric.update(pred[3:], target[3:], subsets[3:])
    out = metric.compute()
    expected_keys = {f"{m}{s}" for m in ("nme", "fr_10", "auc_10") for s in ("", "/pose", "/blur", "/empty")}
    assert set(out) == expected_keys
    assert out["nme"].item() == pytest.approx(sum(errs) / 4, rel=1e-5)
    assert out["fr_10"].item() == pytest.approx(25.0)
    # AUC = mean(max(10 - e, 0)) / 10 = (8 + 4 + 0 + 6) / 4 / 10
    assert out["auc_10"].item() == pytest.approx(18 / 40, rel=1e-5)
    # pose: faces 0, 1 (2%, 6%)
    assert out["nme/pose"].item() == pytest.approx(4.0, rel=1e-5)
    assert out["fr_10/pose"].item() == pytest.approx(0.0)
    assert out["auc_10/pose"].item() == pytest.approx((8 + 4) / 2 / 10, rel=1e-5)
    # blur: faces 1, 2, 3 (6%, 12%, 4%)
    assert out["nme/blur"].item() == pytest.approx(22 / 3, rel=1e-5)
    assert out["fr_10/blur"].item() == pytest.approx(100 / 3, rel=1e-5)
    assert out["auc_10/blur"].item() == pytest.approx((4 + 0 + 6) / 3 / 10, rel=1e-5)
    # An empty subset reports NaN instead of crashing.
    assert all(math.isnan(out[f"{m}/empty"].item()) for m in ("nme", "fr_10", "auc_10"))
    assert metric.per_sample_errors().tolist() == pytest.approx(errs, rel=1e-5)
    metric.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchmetrics warns about compute() before update()
        assert math.isnan(metric.compute()["nme"].item())


def test_metric_threshold_key_and_ced():
    metric = FaceAlignmentMetrics(norm_pair=(0, 1), threshold=0.08)
    pred, target = _faces_with_errors([1.0, 3.0, 9.0])
    metric.update(pred, target)
    out = metric.compute()
    assert set(out) == {"nme", "fr_8", "auc_8"}
    assert out["fr_8"].item() == pytest.approx(100 / 3)
    assert out["auc_8"].item() == pytest.approx((7 + 5 + 0) / 3 / 8, rel=1e-5)
    t, f = metric.ced(max_error=10.0, steps=11)
    assert t.tolist() == pytest.approx([float(i) for i in range(11)])
    # fraction with NME <= t: 1% counts at t=1 (errors recovered to ~1e-6 precision, so allow either side)
    assert f[0].item() == 0.0 and f[2].item() == pytest.approx(1 / 3) and f[5].item() == pytest.approx(2 / 3)
    assert f[10].item() == 1.0


def test_metric_state_is_cat_reduced_and_validates():
    metric = FaceAlignmentMetrics(norm_pair=(0, 1), subset_names=("pose",))
    assert metric._reductions["errors"].__name__ == "dim_zero_cat"
    assert metric._reductions["subsets"].__name__ == "dim_zero_cat"
    pred, target = _faces_with_errors([1.0, 2.0])
    with pytest.raises(ValueError, match="subsets"):
        metric.update(pred, target)  # subsets required when the metric reports subsets
    with pytest.raises(ValueError, match=r"\(B, K\) = \(2, 1\)"):
        metric.update(pred, target, torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="threshold"):
        FaceAlignmentMetrics(norm_pair=(0, 1), threshold=10)
