"""Landmarks for photos: faces found (or given), cropped as in training, the net, back to photo pixels.

Used by ``hih-predict`` (photos, folders; videos in :mod:`hih.video`) and ``hih-export``
(:func:`build_model`); importable without Hydra (only :func:`build_model` needs it). Coordinates
follow the suite's convention (pixel ``i`` covers ``[i, i + 1)``).

A face is cropped by the data pipeline's own :class:`hih.data.transforms.EvalTransform` (around a
box, side ``crop_scale`` x the box's long side) and its landmarks mapped back with the inverse of
that crop. :class:`Predictor` holds the steps between a photo and its landmarks: the detector
(:mod:`hih.detectors`), the detector-box -> training-box map, and the optional second pass that
crops again around the first pass's landmarks, as a ``labels.crop_from=landmarks`` model was trained.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hih.codecs.base import Codec
from hih.data.geometry import apply_affine, landmark_box
from hih.data.records import load_image
from hih.data.transforms import EvalTransform, to_tensor
from hih.detectors import BoxMap, Face, get_detector, read_boxes
from hih.drawing import contact_sheet, draw_faces, draw_landmarks, thumbnail, write_image

__all__ = [
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "FacePrediction",
    "Predictor",
    "build_model",
    "draw_landmarks",
    "list_images",
    "predict_folder",
    "predict_images",
    "predict_photos",
    "read_boxes",
    "resolve_device",
    "resolve_input",
    "write_predictions",
]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


def list_images(folder: str | Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name (other files are left alone)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"no images in {folder}: expected files ending in {', '.join(IMAGE_SUFFIXES)}")
    return paths


def resolve_input(path: str | Path) -> tuple[str, list[Path]]:
    """``("video", [file])`` for a video file, ``("images", [files])`` for a photo or a folder of photos."""
    path = Path(path)
    if path.is_dir():
        return "images", list_images(path)
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path} (input= takes a photo, a folder of photos or a video)")
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return "video", [path]
    return "images", [path]


def build_model(cfg) -> tuple[nn.Module, Codec]:
    """The net and codec (eval mode) with ``cfg.ckpt_path``'s weights, if any (weights_only, mismatches
    listed). ``cfg``: a composed predict / export config (model, module, data.layout). A checkpoint that
    carries its config gives the model and data: ``cfg`` is updated in place
    (:func:`hih.checkpoints.config_from_checkpoint`; ``cli_overrides`` that disagree are an error)."""
    from hih.checkpoints import config_from_checkpoint, load_weights
    from hih.pipeline import build_module

    if cfg.get("ckpt_path"):
        config_from_checkpoint(cfg, cfg.ckpt_path, cfg.get("cli_overrides"))

    # The full LightningModule, so the checkpoint's keys are checked exactly as hih-eval does.
    module = build_module(cfg)
    if cfg.get("ckpt_path"):
        load_weights(module, cfg.ckpt_path)
    return module.net.eval(), module.codec


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> cuda if available else cpu; anything else as torch spells it ("cpu", "cuda:1")."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {device!r} asked for, but no CUDA device is available; use device=cpu or device=auto"
        )
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
    border: str = "constant",
) -> list[np.ndarray]:
    """(N, 2) landmarks in original-image pixels for each (H, W, 3) uint8 RGB image and its box
    (None: the whole image). An image may appear several times (one entry per face). ``border``: how
    a crop reaching past the image is filled, as in training (``data.datamodule.aug.border``)."""
    if len(images) != len(boxes):
        raise ValueError(f"{len(images)} images but {len(boxes)} boxes")
    device = torch.device(device)
    transform = EvalTransform(int(codec.input_size), crop_scale, border=border)
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


@dataclass
class FacePrediction:
    """One face: its box (detector's or given), the detector's score, and (N, 2) landmarks in photo pixels."""

    box: np.ndarray
    score: float | None
    landmarks: np.ndarray

    def to_json(self) -> dict:
        return {
            "box": [round(float(v), 2) for v in self.box],
            "score": None if self.score is None else round(float(self.score), 4),
            "landmarks": np.round(self.landmarks.astype(np.float64), 3).tolist(),
        }

    def drawable(self) -> dict:
        return {"box": self.box, "score": self.score, "landmarks": self.landmarks}


@dataclass
class Predictor:
    """Photo -> faces -> landmarks.

    detector: ``image -> list[Face]`` (:func:`hih.detectors.get_detector`), or None when every
    photo comes with its faces. crop_scale: the training crop's side over its box's long side.
    box_map: detector box -> the box the model was trained to crop around (applied to detected
    faces only; given boxes are taken as the training run's kind of box). second_pass: crop again
    around the first pass's landmarks (their tight box, through ``refine_map``: identity for a
    ``crop_from=landmarks`` model, landmark box -> dataset box for a ``crop_from=box`` one).
    """

    net: nn.Module
    codec: Codec
    detector: Callable[[np.ndarray], list[Face]] | None = None
    crop_scale: float = 1.25
    box_map: BoxMap | None = None
    second_pass: bool = False
    refine_map: BoxMap | None = None
    batch_size: int = 16
    device: str | torch.device = "cpu"
    settings: dict = field(default_factory=dict)
    border: str = "constant"  # the training crops' fill past the image (data.datamodule.aug.border)

    def detect(self, image: np.ndarray) -> list[Face]:
        if self.detector is None:
            raise ValueError("this Predictor has no detector: pass the faces of every image")
        return self.detector(image)

    def crop_box(self, face: Face) -> np.ndarray:
        return self.box_map(face.box) if (self.box_map is not None and face.score is not None) else face.box

    def predict(
        self, images: Sequence[np.ndarray], faces: Sequence[Sequence[Face]] | None = None
    ) -> list[list[FacePrediction]]:
        """Landmarks of every face of every image, all faces batched together for the net.
        ``faces``: per image, its faces; None: detect them."""
        if faces is None:
            faces = [self.detect(im) for im in images]
        if len(faces) != len(images):
            raise ValueError(f"{len(images)} images but faces for {len(faces)}")
        owner = [i for i, fs in enumerate(faces) for _ in fs]
        flat = [f for fs in faces for f in fs]
        if not flat:
            return [[] for _ in images]
        crops = [self.crop_box(f) for f in flat]
        pts = self._run([images[i] for i in owner], crops)
        if self.second_pass:
            refine = self.refine_map or BoxMap()
            pts = self._run([images[i] for i in owner], [refine(landmark_box(p)) for p in pts])
        out: list[list[FacePrediction]] = [[] for _ in images]
        for i, face, p in zip(owner, flat, pts):
            out[i].append(FacePrediction(face.box, face.score, p))
        return out

    def _run(self, images: list[np.ndarray], boxes: list[np.ndarray]) -> list[np.ndarray]:
        return predict_images(
            self.net, self.codec, images, boxes, self.crop_scale, self.batch_size, self.device, self.border
        )


def write_predictions(path: str | Path, payload: dict) -> Path:
    """``payload`` as JSON with one face (or error) per line: readable, and diff-able between runs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = []
    for key, value in payload.items():
        if isinstance(value, list) and value:
            items = ",\n".join(f"    {json.dumps(v)}" for v in value)
            parts.append(f"  {json.dumps(key)}: [\n{items}\n  ]")
        elif isinstance(value, dict) and value:
            items = ",\n".join(f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in value.items())
            parts.append(f"  {json.dumps(key)}: {{\n{items}\n  }}")
        else:
            parts.append(f"  {json.dumps(key)}: {json.dumps(value)}")
    path.write_text("{\n" + ",\n".join(parts) + "\n}\n")
    return path


def _reason(err: BaseException) -> str:
    return str(err) or type(err).__name__


def predict_photos(
    predictor: Predictor,
    paths: Sequence[str | Path],
    output_dir: str | Path,
    boxes: dict[str, list[np.ndarray]] | None = None,
    draw: bool = True,
    layout: str | None = None,
    lines: bool = True,
    sheet: bool = True,
    strict: bool = False,
    progress: bool = True,
) -> dict:
    """Every photo of ``paths`` -> ``output_dir/predictions.json`` (+ ``drawn/<stem>.png`` and
    ``contact_sheet.jpg`` for several photos). Faces come from ``boxes`` (by file name) when given,
    else from the predictor's detector; photos are processed ``predictor.batch_size`` at a time, and
    all their faces go through the net together.

    A file that cannot be read (or detected on) is listed under ``errors`` with its reason and the
    rest go on; with ``strict`` it stops the run, and when no photo at all can be read it is an
    error. Returns the JSON's content: ``faces`` (one entry per face: image, face index, box,
    score, landmarks in photo pixels), ``images`` (size and face count of each photo read),
    ``errors`` and ``settings``.
    """
    from hih.progress import track

    output_dir = Path(output_dir)
    paths = [Path(p) for p in paths]
    result: dict = {"faces": [], "images": {}, "errors": [], "settings": dict(predictor.settings)}
    thumbs: list[tuple[str, np.ndarray]] = []
    step = max(1, predictor.batch_size)
    starts = range(0, len(paths), step)  # one batch of photos in memory at a time
    if progress:  # lines with an ETA (a log file shows them) and a bar on a terminal
        sizes = [len(paths[s : s + step]) for s in starts]
        starts = track(starts, "hih-predict", total=len(paths), unit="photos", sizes=sizes)
    for start in starts:
        images, names, faces = [], [], []
        for path in paths[start : start + step]:
            try:
                image = load_image(path)
                found = [Face(b) for b in _boxes_of(boxes, path)] if boxes is not None else predictor.detect(image)
            except Exception as err:  # one bad file must not cost the batch
                if strict:
                    raise
                result["errors"].append({"image": path.name, "reason": _reason(err)})
                log.warning(f"skipped {path}: {_reason(err)}")
                continue
            images.append(image)
            names.append(path)
            faces.append(found)
        for path, image, preds in zip(names, images, predictor.predict(images, faces)):
            h, w = image.shape[:2]
            result["images"][path.name] = {"width": w, "height": h, "faces": len(preds)}
            for k, p in enumerate(preds):
                result["faces"].append({"image": path.name, "face": k, **p.to_json()})
            if draw:
                drawn = draw_faces(image, [p.drawable() for p in preds], layout, lines=lines)
                write_image(output_dir / "drawn" / f"{path.stem}.png", drawn)
                if sheet and len(thumbs) < 120:
                    thumbs.append((path.name, thumbnail(drawn, 240)))
    if paths and not result["images"]:
        write_predictions(output_dir / "predictions.json", result)
        raise ValueError(
            f"none of the {len(paths)} input images could be read: "
            + "; ".join(f"{e['image']}: {e['reason']}" for e in result["errors"][:3])
        )
    if draw and sheet and len(thumbs) > 1:
        contact_sheet(thumbs, output_dir / "contact_sheet.jpg")
    write_predictions(output_dir / "predictions.json", result)
    return result


def _boxes_of(boxes: dict, path: Path) -> list:
    """A photo's boxes: keyed by its path (a boxes file may name ``sub/a.jpg`` under the folder), else its name."""
    for key in (path, path.name):
        if key in boxes:
            return boxes[key]
    raise KeyError(f"no box for {path}")


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
    detector: str = "none",
    **options,
) -> dict:
    """:func:`predict_photos` on a folder (or one photo) with plain settings: faces from
    ``boxes_file`` (only the images it names; a named image that is missing is an error), else from
    ``detector`` (``none``: each image whole, ``yunet``: detected). ``options``: more
    :func:`predict_photos` keywords."""
    input_dir = Path(input_dir)
    boxes = None
    if boxes_file:
        boxes = read_boxes(boxes_file)
        folder = input_dir if input_dir.is_dir() else input_dir.parent
        missing = [n for n in boxes if not (folder / n).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{boxes_file} names images not in {folder}: {', '.join(missing[:5])}"
                + (" ..." if len(missing) > 5 else "")
            )
        boxes = {folder / n: b for n, b in boxes.items()}  # names may hold subfolders
        paths = list(boxes)
    else:
        paths = resolve_input(input_dir)[1]
    predictor = Predictor(
        net,
        codec,
        None if boxes is not None else get_detector(detector),
        crop_scale,
        batch_size=batch_size,
        device=device,
    )
    return predict_photos(predictor, paths, output_dir, boxes=boxes, draw=draw, **options)
