"""hih-predict on a few synthetic faces: boxes from a file or whole images, JSON in original pixels, PNGs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hih.data.datasets import read_dataset
from hih.data.synthetic import ensure_synthetic
from hih.inference import predict_folder, predict_images, read_boxes
from hih.pipeline import compose

TINY = ["data.input_size=64", "data.heatmap_size=16", "model.channels=16", "model.head_width=16"]


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "synthetic"
    ensure_synthetic(root, n_train=4, n_test=3, seed=0, workers=1, progress=False)
    return read_dataset("synthetic", root, "test")


def _model(tmp_path, ckpt=None):
    from hih.inference import build_model

    overrides = [*TINY, f"input_dir={tmp_path}"] + ([f"ckpt_path={ckpt}"] if ckpt else ["ckpt_path=null"])
    return build_model(compose("predict", overrides, output_dir=tmp_path))


def test_predict_folder_with_boxes_writes_json_and_drawings(tmp_path, faces):
    import shutil

    images = tmp_path / "images"
    images.mkdir()
    lines = []
    for rec in faces:
        shutil.copy(rec.image_path, images / rec.image_path.name)
        lines.append(f"{rec.image_path.name} " + " ".join(f"{v:.2f}" for v in rec.bbox))
    boxes = tmp_path / "boxes.txt"
    boxes.write_text("# name x0 y0 x1 y1\n" + "\n".join(lines) + "\n")

    net, codec = _model(tmp_path)
    out = tmp_path / "out"
    results = predict_folder(net, codec, images, out, boxes_file=boxes, batch_size=2, device="cpu")
    saved = json.loads((out / "predictions.json").read_text())
    assert saved == results and set(saved) == {r.image_path.name for r in faces}
    for rec in faces:
        pts = np.asarray(saved[rec.image_path.name]["landmarks"])
        assert pts.shape == (98, 2)
        # Predictions come back in original-image pixels: around the face box (crop side 1.25 x box).
        x0, y0, x1, y1 = rec.bbox
        side = 1.25 * max(x1 - x0, y1 - y0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        assert (np.abs(pts[:, 0] - cx) <= side / 2 + 1).all() and (np.abs(pts[:, 1] - cy) <= side / 2 + 1).all()
        assert (out / "drawn" / f"{rec.image_path.stem}.png").stat().st_size > 0


def test_predictions_map_back_through_the_crop(tmp_path, faces):
    # A net whose decoded output is fixed in input pixels: mapping back must invert the crop exactly.
    from hih.data.geometry import apply_affine, crop_matrix
    from hih.data.records import load_image

    net, codec = _model(tmp_path)
    rec = faces[0]
    image = load_image(rec.image_path)
    batched = predict_images(net, codec, [image, image], [rec.bbox, None], batch_size=1)
    with torch.no_grad():
        from hih.data.geometry import warp_image
        from hih.data.transforms import to_tensor

        m = crop_matrix(rec.bbox, 64)
        crop = to_tensor(warp_image(image, m, 64))[None]
        direct = codec.decode(net(crop).for_codec())[0].numpy()
    np.testing.assert_allclose(apply_affine(batched[0], m), direct, atol=1e-3)
    assert batched[1].shape == (98, 2)


def test_predict_with_a_trained_checkpoint_loads_weights_only(tmp_path, faces):
    from hih.inference import build_model

    net, _ = _model(tmp_path)
    ckpt = tmp_path / "w.ckpt"
    state = {f"net.{k}": v.clone() + 1.0 if v.is_floating_point() else v for k, v in net.state_dict().items()}
    torch.save({"state_dict": state}, ckpt)
    loaded, _ = build_model(compose("predict", [*TINY, f"input_dir={tmp_path}", f"ckpt_path={ckpt}"], output_dir=tmp_path))
    key = next(k for k, v in loaded.state_dict().items() if v.is_floating_point())
    assert torch.equal(loaded.state_dict()[key], state[f"net.{key}"])


def test_read_boxes_formats_and_errors(tmp_path):
    j = tmp_path / "b.json"
    j.write_text(json.dumps({"a.jpg": [1, 2, 30, 40]}))
    assert read_boxes(j)["a.jpg"].tolist() == [1, 2, 30, 40]
    t = tmp_path / "b.txt"
    t.write_text("a.jpg 1 2 30 40\nb.jpg 1 2 3\n")
    with pytest.raises(ValueError, match=r"b.txt, line 2: expected 'image_name x0 y0 x1 y1' \(5 fields\), got 4"):
        read_boxes(t)
    t.write_text("a.jpg 10 2 3 40\n")
    with pytest.raises(ValueError, match="line 1: expected a box x0 y0 x1 y1 with x1 > x0"):
        read_boxes(t)


def test_predict_feeds_the_net_the_test_sets_crop(tmp_path, faces):
    # One evaluation crop: hih-predict's input for a face is the test dataset's image, to the bit.
    from hih.data.dataset import FaceDataset
    from hih.data.datasets import get_layout
    from hih.data.records import load_image

    net, codec = _model(tmp_path)
    seen = []
    net.register_forward_pre_hook(lambda mod, args: seen.append(args[0].clone()))
    rec = faces[0]
    predict_images(net, codec, [load_image(rec.image_path)], [rec.bbox])
    sample = FaceDataset(faces, get_layout("wflw"), input_size=64, train=False)[0]
    assert torch.equal(seen[0][0], sample["image"])


def test_predict_folder_prints_progress_with_eta(tmp_path, faces, capsys):
    import shutil

    images = tmp_path / "images"
    images.mkdir()
    for rec in faces:
        shutil.copy(rec.image_path, images / rec.image_path.name)
    net, codec = _model(tmp_path)
    predict_folder(net, codec, images, tmp_path / "out", batch_size=2, device="cpu", draw=False)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("predict: ")]
    n = len(faces)
    # pytest's stdout is not a terminal: lines of images done out of the total (batches of 2), then the time taken.
    assert [ln.split()[1] for ln in lines] == [f"{k}/{n}" for k in (*range(2, n, 2), n)] + [f"{n}/{n}"]
    assert all("eta" in ln for ln in lines[:-1]) and "done in" in lines[-1]
