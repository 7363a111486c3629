"""The figures and W&B tables of one test run (hih-train / hih-eval): ced.png, predictions.png,
and, for W&B, the same plots as images plus the results table."""

from __future__ import annotations

from pathlib import Path

import torch

from hih.analysis.plots import plot_ced, plot_predictions
from hih.analysis.results import column_order, split_metrics
from hih.methods import head_output
from hih.metrics import per_sample_nme


def write_test_figures(
    module, datamodule, output_dir: Path, plot_samples: int, title: str | None = None
) -> dict[str, Path]:
    """After trainer.test: ``{"test/ced": ced.png, "test/predictions": predictions.png}`` in ``output_dir``
    (no predictions with ``plot_samples <= 0``)."""
    errors = module.test_errors_by_subset()
    ced = plot_ced(errors, output_dir / "ced.png", threshold=100 * module.metric_threshold, title=title or "CED")
    samples = draw_samples(module, datamodule, output_dir / "predictions.png", plot_samples)
    return {"test/ced": Path(ced)} | ({"test/predictions": Path(samples)} if samples else {})


@torch.no_grad()
def draw_samples(module, datamodule, path: Path, count: int) -> Path | None:
    """Predictions on the first test faces, with the integer (and decimal) heatmap of one landmark."""
    if count <= 0:
        return None
    batch = next(iter(datamodule.test_dataloader()))
    batch = {k: v[:count] for k, v in batch.items()}
    module.eval()
    device = next(module.parameters()).device
    output = module.net(batch["image"].to(device))
    pred = module.codec.decode(output.for_codec()).float().cpu()
    nme = per_sample_nme(pred, batch["landmarks"], module.norm_pair).numpy()
    landmark = int(module.norm_pair[0])  # an eye corner: well defined on every layout
    heat = output.heatmaps[-1][:, landmark].float().cpu().numpy()
    dec = (
        output.head[:, landmark].float().cpu().numpy()
        if output.head_key and head_output(output.head_key).head_is_heatmap
        else None
    )
    return plot_predictions(
        batch["image"].numpy(), batch["landmarks"].numpy(), pred.numpy(), path, heat, dec, landmark, nme
    )


def log_figures(loggers: list, plots: dict[str, Path], metrics: dict[str, float]) -> None:
    """W&B gets the plots as images and the results as a table; other loggers have the files."""
    for lg in loggers:
        if type(lg).__name__ != "WandbLogger":
            continue
        for key, path in plots.items():
            lg.log_image(key, [str(path)])
        rows = split_metrics(metrics, "test")
        # Same column order as the console table: nme, fr, auc, then the integer-only variants.
        columns = sorted({c for r in rows.values() for c in r}, key=column_order)
        lg.log_table(
            "test/results",
            columns=["subset", *columns],
            data=[[s, *(r.get(c) for c in columns)] for s, r in rows.items()],
        )
