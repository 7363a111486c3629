"""Landmarks for a folder of images: face boxes, batched crops, the net, back to original-image pixels.

Used by ``hih-predict`` and ``hih-export`` (:func:`build_model`); importable without Hydra (only
:func:`build_model` needs it). Coordinates follow the suite's convention (pixel ``i`` covers
``[i, i + 1)``). A face is cropped by the data pipeline's own :class:`hih.data.transforms.EvalTransform`
(around its box, side ``crop_scale`` x the box's long side); predictions are mapped back with the
inverse of that crop.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from hih.codecs.base import Codec
from hih.data.geometry import apply_affine
from hih.data.records import load_image
from hih.data.transforms import EvalTransform, to_tensor
from hih.progress import track

__all__ = ["IMAGE_SUFFIXES", "build_model", "draw_landmarks", "list_images", "predict_folder", "predict_images", "read_boxes", "resolve_device"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def list_images(folder: str | Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"no images in {folder}: expected files ending in {', '.join(IMAGE_SUFFIXES)}")
    return paths


def _box(values: Sequence, where: str) -> np.ndarray:
    try:
        box = np.asarray([float(v) for v in values], dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected a box x0 y0 x1 y1 (four numbers), got {values!r}") from None
    if box.shape != (4,) or not np.isfinite(box).all() or box[2] <= box[0] or box[3] <= box[1]:
        raise ValueError(f"{where}: expected a box x0 y0 x1 y1 with x1 > x0 and y1 > y0, got {list(values)!r}")
    return box


def read_boxes(path: str | Path) -> dict[str, np.ndarray]:
    """Face boxes by image file name, from JSON (``{"name.jpg": [x0, y0, x1, y1]}``) or text
    (one ``name.jpg x0 y0 x1 y1`` per line; blank lines and ``#`` comments are skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"box file not found: {path}")
    text = path.read_text()
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}, line {err.lineno}: not valid JSON ({err.msg})") from None
        if not isinstance(data, Mapping):
            raise ValueError(f"{path}: expected a JSON object {{image name: [x0, y0, x1, y1]}}, got a {type(data).__name__}")
        return {str(k): _box(v if isinstance(v, (list, tuple)) else [v], f"{path}, image {k!r}") for k, v in data.items()}
    boxes = {}
    for line_no, line in enumerate(text.splitlines(), 1):
        tokens = line.split("#", 1)[0].split()
        if not tokens:
            continue
        if len(tokens) != 5:
            raise ValueError(f"{path}, line {line_no}: expected 'image_name x0 y0 x1 y1' (5 fields), got {len(tokens)}: {line.strip()!r}")
        boxes[tokens[0]] = _box(tokens[1:], f"{path}, line {line_no}")
    return boxes


def build_model(cfg) -> tuple[nn.Module, Codec]:
    """The net and codec (eval mode) with ``cfg.ckpt_path``'s weights, if any (weights_only, mismatches
    listed). ``cfg``: a composed predict / export config (model, module, data.layout). A checkpoint that
    carries its config gives the model and data: ``cfg`` is updated in place
    (:func:`hih.checkpoints.config_from_checkpoint`; ``cli_overrides`` that disagree are an error)."""
    from hydra.utils import instantiate

    from hih.checkpoints import config_from_checkpoint, load_weights

    if cfg.get("ckpt_path"):
        config_from_checkpoint(cfg, cfg.ckpt_path, cfg.get("cli_overrides"))

    net = instantiate(cfg.model.net)
    codec = instantiate(cfg.model.codec)
    # The full LightningModule, so the checkpoint's keys are checked exactly as hih-eval does.
    module = instantiate(cfg.module, net=net, codec=codec, layout=cfg.data.layout, loss=cfg.model.loss, _recursive_=False)
    if cfg.get("ckpt_path"):
        load_weights(module, cfg.ckpt_path)
    return module.net.eval(), codec


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> cuda if available else cpu; anything else as torch spells it ("cpu", "cuda:1")."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} asked for, but no CUDA device is available; use device=cpu or device=auto")
    return dev


@torch.no_grad()
def predict_images(
    net: nn.Module,
    codec: Codec,
    images: Sequence[np.ndarray],
    boxes: Sequence[np.ndarray | None],
    crop_scale: float = 1.25,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
) -> list[np.ndarray]:
    """(N, 2) landmarks in original-image pixels for each (H, W, 3) uint8 RGB image and its box
    (None: the whole image)."""
    if len(images) != len(boxes):
        raise ValueError(f"{len(images)} images but {len(boxes)} boxes")
    device = torch.device(device)
    transform = EvalTransform(int(codec.input_size), crop_scale)
    net = net.to(device).eval()
    out: list[np.ndarray] = []
    for start in range(0, len(images), batch_size):
        crops, inverses = [], []
        for image, box in zip(images[start : start + batch_size], boxes[start : start + batch_size]):
            h, w = image.shape[:2]
            box = np.array([0, 0, w, h], np.float32) if box is None else box
            crop, m = transform.crop(image, box)
            crops.append(to_tensor(crop))
            inverses.append(np.linalg.inv(m))
        batch = torch.stack(crops).to(device)
        pred = codec.decode(net(batch).for_codec()).float().cpu().numpy()
        out.extend(apply_affine(p, inv) for p, inv in zip(pred, inverses))
    return out


def draw_landmarks(image: np.ndarray, landmarks: np.ndarray, path: str | Path, box: np.ndarray | None = None) -> Path:
    """Write ``image`` (RGB) with its landmarks (and box) as a PNG."""
    canvas = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    radius = max(1, round(max(image.shape[:2]) / 200))
    for x, y in landmarks:
        cv2.circle(canvas, (int(round(x - 0.5)), int(round(y - 0.5))), radius, (0, 0, 255), -1, cv2.LINE_AA)
    if box is not None:
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), (0, 255, 0), max(1, radius // 2))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), canvas):
        raise OSError(f"cannot write {path}")
    return path


def predict_folder(
    net: nn.Module,
    codec: Codec,
    input_dir: str | Path,
    output_dir: str | Path,
    boxes_file: str | Path | None = None,
    crop_scale: float = 1.25,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    draw: bool = True,
) -> dict[str, dict]:
    """Every image of ``input_dir`` -> ``output_dir/predictions.json`` (and ``drawn/<name>.png``).

    With a box file, only the images it names are processed (a named image that is missing is an
    error); without one, every image, each as a whole. Returns the JSON's content:
    ``{name: {"box": [x0, y0, x1, y1], "landmarks": [[x, y], ...]}}`` in original-image pixels.
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if boxes_file:
        boxes = read_boxes(boxes_file)
        missing = [n for n in boxes if not (input_dir / n).is_file()]
        if missing:
            raise FileNotFoundError(f"{boxes_file} names images not in {input_dir}: {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else ""))
        paths = [input_dir / n for n in boxes]
    else:
        boxes, paths = {}, list_images(input_dir)
    results: dict[str, dict] = {}
    starts = range(0, len(paths), batch_size)
    sizes = [min(batch_size, len(paths) - s) for s in starts]
    # one batch of images in memory at a time
    for start in track(starts, "predict", total=len(paths), unit="images", sizes=sizes):
        chunk = paths[start : start + batch_size]
        images = [load_image(p) for p in chunk]
        chunk_boxes = [boxes.get(p.name) for p in chunk]
        preds = predict_images(net, codec, images, chunk_boxes, crop_scale, batch_size, device)
        for path, image, box, pts in zip(chunk, images, chunk_boxes, preds):
            box = np.array([0, 0, image.shape[1], image.shape[0]], np.float32) if box is None else box
            results[path.name] = {"box": [float(v) for v in box], "landmarks": np.round(pts.astype(np.float64), 3).tolist()}
            if draw:
                draw_landmarks(image, pts, output_dir / "drawn" / f"{path.stem}.png", box)
    output_dir.mkdir(parents=True, exist_ok=True)
    # One line per image: readable, and diff-able between runs.
    lines = [f"  {json.dumps(name)}: {json.dumps(rec)}" for name, rec in results.items()]
    (output_dir / "predictions.json").write_text("{\n" + ",\n".join(lines) + "\n}\n")
    return results
