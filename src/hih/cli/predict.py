"""hih-predict: landmarks for photos, a folder of photos or a video (docs/predict.md).

    hih-predict ckpt_path=RUN/checkpoints/last.ckpt input=photos/ [boxes=boxes.txt] [detector=yunet|none|boxes]
    hih-predict ckpt_path=RUN/checkpoints/last.ckpt input=clip.mp4 [detect_every=5]

Faces are found by the bundled detector (or read from ``boxes=``), cropped as the checkpoint was
trained, and every face gets an entry in ``predictions.json`` (box, detector score, landmarks in
photo pixels). The checkpoint (loaded as plain tensors) carries its model and crop settings; for a
checkpoint written before checkpoints carried their config, compose the training run's overrides.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from hih.cli._hydra import hih_main


def _input(cfg: DictConfig) -> str:
    given = [k for k in ("input", "input_dir") if cfg.get(k) not in (None, "", "???")]
    if len(given) == 2 and str(cfg.input) != str(cfg.input_dir):
        raise ValueError(
            f"input={cfg.input} and input_dir={cfg.input_dir} both given: pass one, input=PHOTO|FOLDER|VIDEO"
        )
    if not given:
        raise ValueError("hih-predict needs input=PATH: a photo, a folder of photos or a video")
    return str(cfg[given[0]])


def _detector_name(cfg: DictConfig) -> str:
    name = str(cfg.detector)
    if name == "auto":
        return "boxes" if cfg.boxes else "yunet"
    if cfg.boxes and name != "boxes":
        raise ValueError(f"boxes={cfg.boxes} given with detector={name}: use detector=boxes (or auto), or drop boxes=")
    if name == "boxes" and not cfg.boxes:
        raise ValueError("detector=boxes reads the faces from a file: pass boxes=FILE")
    return name


def build_predictor(cfg: DictConfig, net, codec, detector: str):
    """The :class:`hih.inference.Predictor` the config describes.

    Call it after :func:`build_model` has set the checkpoint's crop.
    """
    from hih.detectors import crop_maps, get_detector
    from hih.inference import Predictor, resolve_device

    crop_from, dataset = str(cfg.crop_from), str(cfg.data.name)
    box_map, refine_map = crop_maps(detector, crop_from, dataset, calibrate=bool(cfg.calibrate))
    second = cfg.second_pass
    if str(second) == "auto":
        second = crop_from == "landmarks"
    elif not isinstance(second, bool):
        raise ValueError(f"second_pass must be auto, true or false, got {second!r}")
    det = (
        None
        if detector == "boxes"
        else get_detector(
            detector,
            **(
                {"threshold": float(cfg.threshold), "max_side": int(cfg.detect_max_side)} if detector == "yunet" else {}
            ),
        )
    )
    settings = {
        "detector": detector,
        "crop_from": crop_from,
        "crop_scale": float(cfg.crop_scale),
        "box_map": box_map.as_list() if box_map else None,
        "second_pass": bool(second),
        "refine_map": refine_map.as_list() if (refine_map and second) else None,
        "border": str(OmegaConf.select(cfg, "data.datamodule.aug.border", default="constant")),
    }
    return Predictor(
        net,
        codec,
        det,
        float(cfg.crop_scale),
        box_map,
        bool(second),
        refine_map,
        int(cfg.batch_size),
        resolve_device(cfg.device),
        settings,
        settings["border"],
    )


@hih_main("predict")
def main(cfg: DictConfig) -> dict:
    from pathlib import Path

    from hih.detectors import read_boxes
    from hih.inference import build_model, predict_photos, resolve_input

    source = _input(cfg)
    kind, paths = resolve_input(source)  # before the model: a wrong path fails at once
    detector = _detector_name(cfg)
    if kind == "video" and detector == "boxes":
        raise ValueError(
            "a video's faces are detected (detector=yunet, or none for a face-only clip); boxes= is for photos"
        )
    net, codec = build_model(cfg)
    predictor = build_predictor(cfg, net, codec, detector)
    out = Path(cfg.paths.output_dir)
    common = {
        "draw": cfg.draw,
        "layout": str(cfg.data.layout),
        "lines": cfg.lines,
        "strict": cfg.strict,
        "progress": cfg.progress,
    }
    if kind == "video":
        from hih.video import predict_video

        result = predict_video(predictor, paths[0], out, detect_every=int(cfg.detect_every), **common)
        v = result["video"]
        print(
            f"{v['frames']} frames, {v['faces']} faces -> {out}/frames/ and {out}/predictions.json"
            + (f"; annotated video {out / v['annotated']}" if v["annotated"] else "")
        )
        _print_errors(result["errors"], "frame")
        return result
    boxes = None
    if detector == "boxes":
        boxes = read_boxes(cfg.boxes)
        folder = Path(source) if Path(source).is_dir() else Path(source).parent
        named = {p.name for p in paths}
        missing = [n for n in boxes if n not in named and not (folder / n).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{cfg.boxes} names images not in {folder}: {', '.join(missing[:5])}"
                + (" ..." if len(missing) > 5 else "")
            )
        if Path(source).is_dir():
            boxes = {folder / n: b for n, b in boxes.items()}  # names may hold subfolders (sub/a.jpg)
            paths = list(boxes)
        else:
            paths = [p for p in paths if p.name in boxes]
        if not paths:
            raise ValueError(f"{cfg.boxes} has no box for {source}")
    result = predict_photos(predictor, paths, out, boxes=boxes, sheet=cfg.contact_sheet, **common)
    n_faces = len(result["faces"])
    print(
        f"{len(result['images'])} images, {n_faces} faces -> {out}/predictions.json"
        + (f" and {out}/drawn/" if cfg.draw else "")
    )
    empty = [name for name, info in result["images"].items() if info["faces"] == 0]
    if empty:
        print(
            f"no face found in {len(empty)} image(s): {', '.join(empty[:5])}"
            + (" ..." if len(empty) > 5 else "")
            + (" (face crops: detector=none; or give boxes=FILE)" if detector == "yunet" else "")
        )
    _print_errors(result["errors"], "image")
    return result


def _print_errors(errors: list[dict], what: str) -> None:
    if errors:
        print(f"{len(errors)} {what}(s) could not be read and were skipped (listed under errors in predictions.json):")
        for e in errors[:20]:
            print(f"  {e[what]}: {e['reason']}")
        if len(errors) > 20:
            print(f"  ... and {len(errors) - 20} more")


if __name__ == "__main__":
    main()
