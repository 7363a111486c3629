"""The detector path of hih-predict, measured: box calibration, detection rate and NME on the synthetic faces.

1. Calibration, on the training split (faces the checkpoint was trained on, never the test set):
   YuNet's box of each face is matched to the face (the detection that overlaps its landmark box
   most, IoU >= 0.3) and a :class:`hih.detectors.BoxMap` is fitted from it to the landmarks' tight
   box (``labels.crop_from=landmarks``) and to the dataset's face box (``crop_from=box``); and one
   from the landmark box to the dataset box (the second pass of a ``crop_from=box`` model).
2. NME on the test split, with the checkpoint's own crop: the dataset's crop (what hih-eval reports)
   beside the detector's box raw / calibrated, each with and without the second pass (a crop again
   around the first pass's landmarks). NME is over the faces the detector found; the dataset crop
   is also given over all faces.

    PYTHONPATH=src python scripts/measure_detector.py --ckpt RUN/checkpoints/last.ckpt [--calib-faces 500]
        [--test-faces 500] [--threshold 0.6] [--data-dir ~/.cache/hih] [--maps-from OTHER.ckpt]

Prints a Markdown table (docs/predict.md) and the fitted maps as Python for hih.detectors.CALIBRATION.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def match(faces, target_box, min_iou: float = 0.3):
    from hih.detectors import box_iou

    best = max(faces, key=lambda f: box_iou(f.box, target_box), default=None)
    return best if best is not None and box_iou(best.box, target_box) >= min_iou else None


def detect_all(detector, records, desc: str):
    from tqdm import tqdm

    from hih.data.geometry import landmark_box
    from hih.data.records import load_image

    images, found = [], []
    for rec in tqdm(records, desc=desc, unit="face", mininterval=2.0):
        image = load_image(rec.image_path)
        images.append(image)
        found.append(match(detector(image), landmark_box(rec.landmarks)))
    return images, found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--calib-faces", type=int, default=500)
    parser.add_argument("--test-faces", type=int, default=500)
    parser.add_argument("--threshold", type=float, default=0.6)
    parser.add_argument("--data-dir", default=str(Path.home() / ".cache" / "hih"))
    args = parser.parse_args(argv)

    from hih.data.datasets import get_layout, read_dataset
    from hih.data.geometry import crop_box, landmark_box
    from hih.detectors import Face, YuNet, fit_box_map
    from hih.inference import Predictor, build_model
    from hih.metrics import per_sample_nme
    from hih.pipeline import compose

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose("predict", [f"ckpt_path={args.ckpt}", f"paths.data_dir={args.data_dir}"], output_dir=tmp)
        net, codec = build_model(cfg)
    crop_from, crop_scale, dataset = str(cfg.crop_from), float(cfg.crop_scale), str(cfg.data.name)
    layout = get_layout(str(cfg.data.layout))
    root = Path(args.data_dir) / "synthetic"
    train = read_dataset("synthetic", root, "train")[: args.calib_faces]
    test = read_dataset("synthetic", root, "test")[: args.test_faces]
    detector = YuNet(threshold=args.threshold)
    print(f"checkpoint {args.ckpt}: {cfg.model.name}, crop_from={crop_from}, crop_scale={crop_scale}, data={dataset}")

    t0 = time.perf_counter()
    _, found = detect_all(detector, train, "detect (train)")
    pairs = [(f.box, rec) for f, rec in zip(found, train) if f is not None]
    det_boxes = [b for b, _ in pairs]
    maps = {
        ("yunet", "landmarks"): fit_box_map(det_boxes, [landmark_box(r.landmarks) for _, r in pairs]),
        ("yunet", "box:synthetic"): fit_box_map(det_boxes, [r.bbox for _, r in pairs]),
        ("landmarks", "box:synthetic"): fit_box_map(
            [landmark_box(r.landmarks) for r in train], [r.bbox for r in train]
        ),
    }
    print(f"calibration: {len(pairs)}/{len(train)} training faces detected ({time.perf_counter() - t0:.0f} s)")
    for key, m in maps.items():
        print(f"    {key!r}: BoxMap(*{m.as_list()}),")

    target = "landmarks" if crop_from == "landmarks" else "box:synthetic"
    box_map = maps[("yunet", target)]
    refine = None if crop_from == "landmarks" else maps[("landmarks", "box:synthetic")]
    images, found = detect_all(detector, test, "detect (test)")
    hit = [i for i, f in enumerate(found) if f is not None]
    gt = torch.from_numpy(np.stack([r.landmarks for r in test]))

    def nme(preds, idx):
        return per_sample_nme(torch.from_numpy(np.stack(preds)), gt[idx], layout.norm_pair)

    def run(boxes, idx, second: bool, bmap=None, detected=True):
        p = Predictor(net, codec, None, crop_scale, bmap, second, refine, batch_size=32)
        faces = [[Face(boxes[k], 1.0 if detected else None)] for k in range(len(idx))]
        preds = p.predict([images[i] for i in idx], faces)
        return nme([fs[0].landmarks for fs in preds], idx)

    all_idx = list(range(len(test)))
    dataset_boxes = [np.asarray(crop_box(crop_from, r.bbox, r.landmarks), np.float32) for r in test]
    rows = [("dataset crop (hih-eval), all faces", run(dataset_boxes, all_idx, False, detected=False))]
    rows.append(("dataset crop, detected faces", run([dataset_boxes[i] for i in hit], hit, False, detected=False)))
    det = [found[i].box for i in hit]
    for name, bmap in (("raw", None), ("calibrated", box_map)):
        for second in (False, True):
            rows.append((f"detector box, {name}" + (" + second pass" if second else ""), run(det, hit, second, bmap)))
    print(f"\ndetected {len(hit)}/{len(test)} test faces (threshold {args.threshold})\n")
    print("| crop | faces | NME (%) | FR@10 (%) |\n|---|---:|---:|---:|")
    for name, err in rows:
        print(f"| {name} | {len(err)} | {err.mean().item():.3f} | {(err > 10).float().mean().item() * 100:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
