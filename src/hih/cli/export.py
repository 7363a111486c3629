"""hih-export: the network to ONNX (dynamic batch), checked against PyTorch with onnxruntime.

    hih-export ckpt_path=RUN/checkpoints/last.ckpt     # the model the checkpoint describes
    hih-export model=hih_t model.stacks=2              # fresh weights: a smoke test of the graph

Writes RUN_DIR/<model name>.onnx and prints the max abs differences (heatmap, head, decoded
landmarks) between onnxruntime and PyTorch; fails if any exceeds ``tolerance``.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from hih.cli._hydra import hih_main


def export(cfg: DictConfig) -> dict[str, float]:
    from hih.exporting import check_onnx, export_onnx
    from hih.inference import build_model

    net, codec = build_model(cfg)
    path = export_onnx(
        net, Path(cfg.paths.output_dir) / f"{cfg.model.name}.onnx", int(cfg.data.input_size), cfg.opset, cfg.dynamo
    )
    diffs = check_onnx(path, net, codec, tuple(cfg.check_batch_sizes))
    print(
        f"wrote {path}; max abs difference onnxruntime vs PyTorch: "
        + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items() if k != "argmax_ties")
        + f" (landmarks with tied argmax cells, left out: {int(diffs['argmax_ties'])})"
    )
    worst = max((k for k in diffs if k != "argmax_ties"), key=diffs.get)
    if diffs[worst] > cfg.tolerance:
        raise RuntimeError(f"ONNX check failed: {worst} differs by {diffs[worst]:.3e} > tolerance {cfg.tolerance}")
    return diffs


@hih_main("export")
def main(cfg: DictConfig) -> dict[str, float]:
    return export(cfg)


if __name__ == "__main__":
    main()
