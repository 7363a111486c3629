"""hih-predict: landmarks for a folder of images, as JSON in original-image pixels plus drawn PNGs.

    hih-predict ckpt_path=RUN/checkpoints/last.ckpt input_dir=photos/ [boxes=boxes.txt] [device=cuda]

The checkpoint (loaded as plain tensors) carries its model and crop settings. For a checkpoint
written before checkpoints carried their config, compose the training run's overrides
(experiment=quickstart, model=...).
"""

from __future__ import annotations

from omegaconf import DictConfig

from hih.cli._hydra import hih_main


@hih_main("predict")
def main(cfg: DictConfig) -> dict:
    from hih.inference import build_model, predict_folder, resolve_device

    net, codec = build_model(cfg)
    out = cfg.paths.output_dir
    results = predict_folder(
        net, codec, cfg.input_dir, out, boxes_file=cfg.boxes, crop_scale=cfg.crop_scale,
        batch_size=cfg.batch_size, device=resolve_device(cfg.device), draw=cfg.draw,
    )
    print(f"{len(results)} images -> {out}/predictions.json" + (f" and {out}/drawn/" if cfg.draw else ""))
    return results


if __name__ == "__main__":
    main()
