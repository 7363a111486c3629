"""Landmarks for a video: frames read with OpenCV, faces detected every ``detect_every`` frames
(boxes carried between detections), an annotated video with as many frames as the input and one
JSON per frame.

Outputs in ``output_dir``: ``<stem>_landmarks.mp4`` (or ``.avi`` if the mp4 writer is missing),
``frames/<stem>_<frame:06d>.json`` (``{"frame", "time", "faces": [{box, score, landmarks}], "error"?}``)
and ``predictions.json`` (the video's size, frame count, frame rate and the frames that could not be
decoded, under ``errors``). A frame that cannot be decoded is skipped and said so: the annotated
video repeats the last good frame there (black before the first good one), so its frame count
and timing stay the input's.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np

from hih.detectors import Face
from hih.drawing import draw_faces
from hih.inference import Predictor, write_predictions

__all__ = ["predict_video"]

log = logging.getLogger(__name__)

#: Consecutive undecodable frames after which the rest of the file is taken as unreadable.
MAX_BAD_RUN = 50


def _writer(path: Path, fps: float, size: tuple[int, int]) -> tuple[cv2.VideoWriter, Path]:
    for suffix, fourcc in ((".mp4", "mp4v"), (".avi", "MJPG")):
        out = path.with_suffix(suffix)
        writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if writer.isOpened():
            return writer, out
    raise OSError(
        f"OpenCV cannot write a video to {path.with_suffix('.mp4')} (mp4v) or {path.with_suffix('.avi')} (MJPG)"
    )


def predict_video(
    predictor: Predictor,
    path: str | Path,
    output_dir: str | Path,
    detect_every: int = 1,
    draw: bool = True,
    layout: str | None = None,
    lines: bool = True,
    strict: bool = False,
    progress: bool = True,
) -> dict:
    """Landmarks of every face of every frame of ``path``; see the module docstring for the outputs.
    Returns the content of ``predictions.json``."""
    from tqdm import tqdm

    if detect_every < 1:
        raise ValueError(f"detect_every must be >= 1 (1: detect on every frame), got {detect_every}")
    path, output_dir = Path(path), Path(output_dir)
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise OSError(f"cannot open video {path}: not a video file OpenCV can read")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    frames_dir = output_dir / "frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    writer = out_path = None
    errors: list[dict] = []
    carried: list[Face] = []
    last_drawn: np.ndarray | None = None
    index = faces_seen = bad_run = blank_frames = 0
    size: tuple[int, int] | None = None
    batch: list[tuple[int, np.ndarray, list[Face]]] = []
    bar = tqdm(
        total=total or None, unit="frame", desc=f"hih-predict {path.name}", disable=not progress, mininterval=1.0
    )

    def flush() -> None:
        nonlocal writer, out_path, last_drawn, faces_seen
        if not batch:
            return
        preds = predictor.predict([im for _, im, _ in batch], [fs for _, _, fs in batch])
        for (i, image, _), faces in zip(batch, preds):
            faces_seen += len(faces)
            record = {"frame": i, "time": round(i / fps, 4), "faces": [f.to_json() for f in faces]}
            (frames_dir / f"{path.stem}_{i:06d}.json").write_text(json.dumps(record) + "\n")
            if draw:
                last_drawn = draw_faces(image, [f.drawable() for f in faces], layout, lines=lines)
                if writer is None:
                    writer, out_path = _writer(
                        output_dir / f"{path.stem}_landmarks", fps, (image.shape[1], image.shape[0])
                    )
                    for _ in range(blank_frames):  # undecodable frames before the first good one: black
                        writer.write(np.zeros((image.shape[0], image.shape[1], 3), np.uint8))
                writer.write(cv2.cvtColor(last_drawn, cv2.COLOR_RGB2BGR))
        batch.clear()

    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                # Past the announced count (or with none announced) this is the end of the file;
                # before it, an undecodable frame: skip it, say so, keep the count.
                if total and index < total and bad_run < MAX_BAD_RUN:
                    bad_run += 1
                    if strict:
                        raise OSError(f"{path}: frame {index} cannot be decoded")
                    flush()
                    errors.append({"frame": index, "reason": "frame cannot be decoded"})
                    (frames_dir / f"{path.stem}_{index:06d}.json").write_text(
                        json.dumps(
                            {
                                "frame": index,
                                "time": round(index / fps, 4),
                                "faces": [],
                                "error": "frame cannot be decoded",
                            }
                        )
                        + "\n"
                    )
                    if draw and writer is not None and last_drawn is not None:
                        writer.write(cv2.cvtColor(last_drawn, cv2.COLOR_RGB2BGR))
                    elif draw:
                        blank_frames += 1
                    index += 1
                    bar.update(1)
                    continue
                break
            bad_run = 0
            image = (
                cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
            )
            size = size or (image.shape[1], image.shape[0])
            if index % detect_every == 0:
                carried = predictor.detect(image)
            batch.append((index, image, carried))
            if len(batch) >= predictor.batch_size:
                flush()
            index += 1
            bar.update(1)
        flush()
    finally:
        bar.close()
        cap.release()
        if writer is not None:
            writer.release()
    if index == 0 or size is None:
        raise OSError(f"no frame of {path} could be decoded")
    if errors:
        log.warning(
            f"{path}: {len(errors)} frame(s) could not be decoded and were skipped: "
            + ", ".join(str(e["frame"]) for e in errors[:10])
            + (" ..." if len(errors) > 10 else "")
        )
    result = {
        "video": {
            "name": path.name,
            "width": size[0],
            "height": size[1],
            "fps": round(float(fps), 3),
            "frames": index,
            "faces": faces_seen,
            "detect_every": int(detect_every),
            "annotated": out_path.name if out_path else None,
        },
        "errors": errors,
        "settings": dict(predictor.settings),
    }
    write_predictions(output_dir / "predictions.json", result)
    return result
