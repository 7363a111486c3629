"""The run's figures: the CED legend shows the AUC of metrics.json (hih.metrics), not a re-integration."""

from __future__ import annotations

import numpy as np
import torch

from hih.analysis import plots
from hih.metrics import auc_from_errors


def _legend(monkeypatch, errors: dict, threshold: float) -> list[str]:
    figs = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figs.append(fig) or path)
    plots.plot_ced(errors, "unused.png", threshold=threshold)
    return [t.get_text() for t in figs[0].axes[0].get_legend().get_texts()]


def test_ced_legend_shows_the_metric_auc(monkeypatch):
    # One face at NME 2.494 % cut at 10 %: the exact AUC is 0.7506 ("0.751"); the trapezoid rule on the
    # 1000-step curve gives 0.75025 ("0.750"), so this tells the two apart.
    errors = {"full": np.array([2.494]), "pose": np.array([1.0, 3.0, 12.0])}
    labels = _legend(monkeypatch, errors, threshold=10.0)
    for label, (name, err) in zip(labels, errors.items()):
        auc = float(auc_from_errors(torch.as_tensor(err), 0.10))
        assert label == f"{name} (NME {err.mean():.2f}, AUC {auc:.3f})"
    assert labels[0].endswith("AUC 0.751)")


def test_denormalize_inverts_to_tensor():
    from hih.data.transforms import to_tensor

    img = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    normed = np.stack([to_tensor(i).numpy() for i in img])
    np.testing.assert_allclose(plots.denormalize(normed), img / 255.0, atol=1e-5)
