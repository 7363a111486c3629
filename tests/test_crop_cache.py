"""The face-crop cache: same crops and labels as the full photos, same NME, safe under concurrent builds,
rebuilt when damaged. Tiny WFLW-like photos (a handful, 120-160 px) keep it fast."""

from __future__ import annotations

import json
import multiprocessing as mp

import numpy as np
import pytest
import torch

from hih.data.crop_cache import (
    CACHE_VERSION,
    DATA,
    INDEX,
    MANIFEST,
    CropCache,
    CropSettings,
    _decode,
    ensure_crop_cache,
    make_crop,
    problem,
)
from hih.data.dataset import FaceDataset
from hih.data.datasets import get_layout, read_dataset
from hih.data.datasets.synthetic_photos import ensure_synthetic_photos
from hih.data.geometry import apply_affine
from hih.data.transforms import AugmentConfig, denormalize

S = 64
LAYOUT = get_layout("wflw")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos") / "synthetic_photos"
    ensure_synthetic_photos(
        root, n_train=4, n_test=2, seed=1, photo_size=(120, 160), iod_range=(8.0, 40.0), progress=False, workers=1
    )
    return root


def _records(root, split="train"):
    return read_dataset("synthetic_photos", root, split)


def _cached(records, cache_dir, train, **kw):
    plain = FaceDataset(records, LAYOUT, S, train=train, **kw)
    cache = ensure_crop_cache(
        records, plain.crop_settings(), cache_dir, "synthetic_photos", "train", workers=1, progress=False
    )
    return plain, FaceDataset(records, LAYOUT, S, train=train, crops=cache, **kw), cache


def _grey_levels(image: torch.Tensor) -> torch.Tensor:
    return denormalize(image) * 255.0


def test_training_crops_match_the_full_photo(photos, tmp_path):
    records = _records(photos)
    plain, cached, _ = _cached(records, tmp_path, train=True)
    diffs = []
    for i in range(len(records)):
        for epoch in range(3):
            a, b = plain.get(i, epoch), cached.get(i, epoch)
            torch.testing.assert_close(a["landmarks"], b["landmarks"], rtol=0, atol=1e-4)
            diffs.append((_grey_levels(a["image"]) - _grey_levels(b["image"])).abs().mean().item())
    assert np.mean(diffs) < 1.0, diffs  # grey levels of 255: interpolation only
    assert max(diffs) < 4.0, diffs


def test_rotation_reaching_the_margin_stays_inside_the_crop(photos, tmp_path):
    """Every flip / rotation / jitter drawn at its extreme: the cached crop still holds what the input shows."""
    records = _records(photos)
    aug = {
        "rotation_prob": 1.0,
        "max_rotation": 30.0,
        "scale_jitter": 0.05,
        "shift_jitter": 0.05,
        "occlusion_prob": 0.0,
        "blur_prob": 0.0,
        "color_prob": 0.0,
        "border": "replicate",
    }
    plain, cached, _ = _cached(records, tmp_path, train=True, aug=aug)
    for i in range(len(records)):
        for epoch in range(4):
            a, b = plain.get(i, epoch), cached.get(i, epoch)
            assert (_grey_levels(a["image"]) - _grey_levels(b["image"])).abs().mean().item() < 4.0


def test_evaluation_crops_and_nme_equal_the_full_photo(photos, tmp_path):
    from hih.methods import build_codec, build_net
    from hih.metrics import per_sample_nme

    records = _records(photos, "test")
    plain, cached, cache = _cached(records, tmp_path, train=False)
    assert cache.settings.eval_only
    torch.manual_seed(0)
    net = build_net("none", num_landmarks=98, channels=8, input_size=S).eval()
    codec = build_codec("baseline", input_size=S, heatmap_size=S // 4)
    nmes = []
    for ds in (plain, cached):
        batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
        with torch.no_grad():
            pred = codec.decode(net(batch["image"]).for_codec())
        nmes.append(per_sample_nme(pred, batch["landmarks"], LAYOUT.norm_pair))
        if ds is plain:
            reference = batch
        else:
            assert torch.equal(batch["image"], reference["image"])  # the cached crop is the evaluation input itself
            torch.testing.assert_close(batch["landmarks"], reference["landmarks"], rtol=0, atol=1e-4)
    assert abs(nmes[0].mean().item() - nmes[1].mean().item()) < 1e-4
    torch.testing.assert_close(nmes[0], nmes[1], rtol=0, atol=1e-4)
    # back in the photo's own pixels: the cached path's input -> photo map is the full-photo path's
    for i, rec in enumerate(records):
        _, _, m = cached.eval_transform(cached.crops.read(i)[0], rec.landmarks, rec.bbox, cached.crops.read(i)[1])
        photo = apply_affine(batch["landmarks"][i].numpy(), np.linalg.inv(m))
        np.testing.assert_allclose(photo, rec.landmarks, atol=1e-3)


def test_evaluation_crops_of_a_small_input_are_exact_too(tmp_path):
    # 16 px from faces of 40+ px inter-ocular: a reduced (draft) JPEG decode would serve them, and shift the NME.
    root = tmp_path / "big_faces"
    ensure_synthetic_photos(
        root, n_train=1, n_test=2, seed=2, photo_size=(200, 240), iod_range=(40.0, 60.0), progress=False, workers=1
    )
    records = _records(root, "test")
    plain = FaceDataset(records, LAYOUT, 16, train=False)
    cache = ensure_crop_cache(
        records, plain.crop_settings(), tmp_path, "synthetic_photos", "test", workers=1, progress=False
    )
    cached = FaceDataset(records, LAYOUT, 16, train=False, crops=cache)
    for i in range(len(records)):
        assert torch.equal(cached[i]["image"], plain[i]["image"])


def test_a_cache_built_for_evaluation_does_not_serve_training(photos, tmp_path):
    records = _records(photos)
    _, _, eval_cache = _cached(records, tmp_path, train=False)
    with pytest.raises(ValueError, match="does not cover"):
        FaceDataset(records, LAYOUT, S, train=True, crops=eval_cache)
    # and another input size is another cache
    other = FaceDataset(records, LAYOUT, 2 * S, train=False)
    cache2 = ensure_crop_cache(
        records, other.crop_settings(), tmp_path, "synthetic_photos", "train", workers=1, progress=False
    )
    assert cache2.folder != eval_cache.folder and cache2.built


def test_jpeg_format_reads_back_close(photos, tmp_path):
    records = _records(photos)
    plain = FaceDataset(records, LAYOUT, S, train=True)
    cache = ensure_crop_cache(
        records, plain.crop_settings(), tmp_path, "synthetic_photos", "train", fmt="jpeg", workers=1, progress=False
    )
    cached = FaceDataset(records, LAYOUT, S, train=True, crops=cache)
    diff = np.mean(
        [
            (_grey_levels(plain.get(i)["image"]) - _grey_levels(cached.get(i)["image"])).abs().mean().item()
            for i in range(len(records))
        ]
    )
    assert diff < 3.0


def test_reduced_decode_ignores_exif_orientation_like_the_full_decode(tmp_path):
    # Phone photos carry an EXIF rotation; labels are made on the stored pixels, as load_image reads them.
    from PIL import Image

    path = tmp_path / "tagged.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (400, 600, 3), dtype=np.uint8)).save(path, exif=exif)
    full, _ = _decode(path, 1.0, draft=False)
    small, scale = _decode(path, 0.2, draft=True)
    assert scale == 0.25 and full.shape[:2] == (400, 600) and small.shape[:2] == (100, 150)


def test_draft_decode_is_a_pure_scaling(photos):
    """Reduced JPEG decode (DCT scaling): pixel j covers photo pixels [k j, k (j + 1)).

    So the crop matches the full decode.
    """
    rec = _records(photos)[0]
    settings = CropSettings(input_size=16, max_rotation=30.0, scale_jitter=0.05, shift_jitter=0.05)
    density = settings.density(settings.box(rec))
    assert density <= 0.5  # a 16 px input asks for at most half the photo's resolution
    small, scale = _decode(rec.image_path, density, draft=True)
    full, one = _decode(rec.image_path, density, draft=False)
    assert scale < 1 and one == 1.0 and small.shape[1] < full.shape[1]
    a, ma = make_crop(small, rec, settings, scale)
    b, mb = make_crop(full, rec, settings, 1.0)
    assert np.array_equal(ma, mb) and a.shape == b.shape
    assert np.abs(a.astype(float) - b.astype(float)).mean() < 6.0


def test_damaged_or_outdated_cache_is_rebuilt(photos, tmp_path):
    records = _records(photos)
    settings = FaceDataset(records, LAYOUT, S, train=True).crop_settings()

    def ensure():
        return ensure_crop_cache(records, settings, tmp_path, "synthetic_photos", "train", workers=1, progress=False)

    first = ensure()
    assert first.built and not ensure().built  # reused
    assert first.verify()
    reference = [first.read(i)[0].copy() for i in range(len(first))]
    folder = first.folder

    data = folder / DATA
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])  # truncated
    assert "wrong size" in problem(folder, first.key)
    again = ensure()
    assert again.built and problem(folder, first.key) is None
    assert all(np.array_equal(again.read(i)[0], reference[i]) for i in range(len(again)))

    raw = bytearray(data.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 64] = bytes(b ^ 0xFF for b in raw[middle : middle + 64])  # the full checksum sees this
    data.write_bytes(bytes(raw))
    assert not CropCache(folder).verify()
    raw[:64] = bytes(64)  # overwritten in place, same size
    data.write_bytes(bytes(raw))
    assert "checksum" in problem(folder, first.key)
    assert ensure().built

    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["key"]["version"] = CACHE_VERSION - 1
    (folder / MANIFEST).write_text(json.dumps(manifest))
    assert "version" in problem(folder, first.key)
    assert ensure().built

    (folder / MANIFEST).write_text("{ half-writ")
    assert ensure().built
    (folder / MANIFEST).unlink()  # a build that died before its last write
    assert ensure().built
    (folder / INDEX).write_bytes(b"x" * (folder / INDEX).stat().st_size)
    assert "checksum" in problem(folder, first.key) and ensure().built


def test_annotation_change_means_another_cache(photos, tmp_path):
    records = _records(photos)
    settings = FaceDataset(records, LAYOUT, S, train=True).crop_settings()
    a = ensure_crop_cache(records, settings, tmp_path, "synthetic_photos", "train", workers=1, progress=False)
    records[0].landmarks = records[0].landmarks + 0.5
    b = ensure_crop_cache(records, settings, tmp_path, "synthetic_photos", "train", workers=1, progress=False)
    assert a.folder != b.folder and b.built


def _build_in_process(root, cache_dir, barrier, queue):
    records = read_dataset("synthetic_photos", root, "train")
    settings = FaceDataset(records, LAYOUT, S, train=True).crop_settings()
    barrier.wait()
    cache = ensure_crop_cache(records, settings, cache_dir, "synthetic_photos", "train", workers=1, progress=False)
    queue.put((cache.built, str(cache.folder), [cache.read(i)[0].sum().item() for i in range(len(cache))]))


@pytest.mark.slow  # starts two processes
def test_two_processes_building_at_once_build_once(photos, tmp_path):
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_build_in_process, args=(photos, tmp_path, barrier, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sorted(r[0] for r in results) == [False, True]  # one built, the other waited and read it
    assert results[0][1] == results[1][1] and results[0][2] == results[1][2]
    records = _records(photos)
    settings = FaceDataset(records, LAYOUT, S, train=True).crop_settings()
    cache = ensure_crop_cache(records, settings, tmp_path, "synthetic_photos", "train", workers=1, progress=False)
    assert not cache.built and problem(cache.folder, cache.key) is None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left behind


def test_datamodule_reads_through_the_cache(photos, tmp_path):
    from hih.data import FaceDataModule

    kw = dict(
        root=photos,
        input_size=S,
        batch_size=4,
        num_workers=0,
        val_fraction=0.25,
        n_photos=4,
        n_test_photos=2,
        photos_seed=1,
        photo_size=(120, 160),
        iod_range=(8.0, 40.0),
    )
    dm = FaceDataModule("synthetic_photos", cache=True, cache_dir=tmp_path, **kw)
    ref = FaceDataModule("synthetic_photos", cache=False, **kw)
    for m in (dm, ref):
        m.setup("fit"), m.setup("test")
    assert dm.train_set.crops is not None and dm.val_set.crops is not None and dm.test_set.crops is not None
    assert dm.val_set.crops.settings.eval_only  # validation reads evaluation crops, not the training margins
    assert ref.test_set.crops is None
    for a, b in ((dm.val_set, ref.val_set), (dm.test_set, ref.test_set)):
        for i in range(len(a)):
            assert torch.equal(a[i]["image"], b[i]["image"])
    assert AugmentConfig.from_any(None).max_rotation == dm.train_set.crops.settings.max_rotation
