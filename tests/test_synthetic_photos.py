"""WFLW-like synthetic photos: several faces per photo, WFLW's list format (one line per face), and the
readers, crops, metrics and predictions.png right when faces share a photo."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from hih.data.datasets import get_dataset, get_layout, read_dataset
from hih.data.datasets.synthetic_photos import ensure_synthetic_photos, make_photo
from hih.data.readers._common import image_size
from hih.data.readers.wflw import LIST_DIR, NUM_FIELDS, list_file_name

S = 64
LAYOUT = get_layout("wflw")
SMALL = dict(photo_size=(120, 160), iod_range=(8.0, 40.0))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos") / "synthetic_photos"
    ensure_synthetic_photos(root, n_train=4, n_test=2, seed=1, progress=False, workers=1, **SMALL)
    return root


def test_registered_with_the_wflw_layout_and_options():
    info = get_dataset("synthetic_photos")
    assert info.layout is LAYOUT and info.prepare is not None and "n_photos" in info.options


def test_photo_sizes_face_counts_and_sizes_follow_the_spec():
    counts, iods = Counter(), []
    for i in range(6):
        image, faces, quality = make_photo(0, "train", i)
        h, w = image.shape[:2]
        assert 800 <= h <= 1200 and 800 <= w <= 1200 and 75 <= quality <= 95
        assert 1 <= len(faces) <= 4
        counts[len(faces)] += 1
        for lms, box, flags in faces:
            iods.append(np.linalg.norm(lms[60] - lms[72]))
            assert box[0] < box[2] and box[1] < box[3] and flags.shape == (6,)
    assert counts[1] < 6  # several faces in some photos
    assert min(iods) < 60 and max(iods) > 100  # small and large faces, as in WFLW


def test_list_has_one_line_per_face_and_several_per_image(photos):
    lines = (photos / LIST_DIR / list_file_name("train")).read_text().splitlines()
    assert all(len(line.split()) == NUM_FIELDS for line in lines)
    per_image = Counter(line.split()[-1] for line in lines)
    assert len(per_image) == 4 and max(per_image.values()) >= 2, per_image
    records = read_dataset("synthetic_photos", photos, "train")
    assert len(records) == len(lines)


def test_faces_of_one_photo_do_not_overlap_and_lie_in_it(photos):
    records = read_dataset("synthetic_photos", photos, "train")
    by_image: dict = {}
    for r in records:
        by_image.setdefault(r.image_path, []).append(r)
    for path, faces in by_image.items():
        w, h = image_size(path)
        for k, r in enumerate(faces):
            assert (r.landmarks >= 0).all() and (r.landmarks[:, 0] <= w).all() and (r.landmarks[:, 1] <= h).all()
            lo, hi = r.landmarks.min(0), r.landmarks.max(0)
            for other in faces[k + 1 :]:
                olo, ohi = other.landmarks.min(0), other.landmarks.max(0)
                assert (hi < olo).any() or (ohi < lo).any(), f"faces overlap in {path}"


def test_each_face_of_a_shared_photo_gets_its_own_crop_metrics_and_plot(photos, tmp_path):
    """Two faces of one photo: two samples, each cropped around its own landmarks; the NME of a perfect
    prediction is 0 for each and a prediction of the other face's crop is not; predictions.png draws them."""
    from hih.analysis.figures import draw_samples
    from hih.data import FaceDataModule
    from hih.methods import build_codec, build_net
    from hih.metrics import per_sample_nme
    from hih.module import FaceAlignmentModule

    dm = FaceDataModule(
        "synthetic_photos",
        root=photos,
        input_size=S,
        batch_size=32,
        num_workers=0,
        n_photos=4,
        n_test_photos=2,
        photos_seed=1,
        cache=True,
        cache_dir=tmp_path / "cache",
        **SMALL,
    )
    dm.setup("test")
    ds = dm.test_set
    shared = Counter(r.image_path for r in ds.records)
    batch = next(iter(dm.test_dataloader()))
    assert batch["index"].tolist() == list(range(len(ds)))
    lms = batch["landmarks"]
    # every crop is centred on its own face
    centre = lms.mean(1)
    assert ((centre - S / 2).abs() < 0.2 * S).all()
    nme = per_sample_nme(lms, lms, LAYOUT.norm_pair)
    assert torch.all(nme == 0)
    sharing = [i for i, r in enumerate(ds.records) if shared[r.image_path] > 1]
    if len(sharing) >= 2:
        a, b = sharing[:2]
        swapped = per_sample_nme(lms[[b]] + 7.0, lms[[a]], LAYOUT.norm_pair)
        assert swapped.item() > 0
        assert not torch.equal(batch["image"][a], batch["image"][b])
    torch.manual_seed(0)
    net = build_net("none", num_landmarks=98, channels=8, input_size=S)
    codec = build_codec("baseline", input_size=S, heatmap_size=S // 4)
    module = FaceAlignmentModule(net, codec, layout="wflw")
    path = draw_samples(module, dm, tmp_path / "predictions.png", 3)
    assert path.is_file() and path.stat().st_size > 1000


def test_generated_once_and_reused(photos):
    mtime = (photos / LIST_DIR / list_file_name("train")).stat().st_mtime_ns
    ensure_synthetic_photos(photos, n_train=4, n_test=2, seed=1, progress=False, workers=1, **SMALL)
    assert (photos / LIST_DIR / list_file_name("train")).stat().st_mtime_ns == mtime
