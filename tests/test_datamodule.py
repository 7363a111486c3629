"""FaceDataset, EpochSampler and FaceDataModule on a tiny synthetic set (16 train / 8 test, input 64)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from hih.data.datamodule import FaceDataModule
from hih.data.dataset import EpochSampler, FaceDataset
from hih.data.datasets import get_layout, read_dataset
from hih.data.records import FaceRecord

S = 64
LAYOUT = get_layout("wflw")


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "synthetic"
    FaceDataModule(dataset="synthetic", root=root, n_train=16, n_test=8, num_workers=0).prepare_data()
    return root


@pytest.fixture(scope="module")
def train_records(synth_root) -> list[FaceRecord]:
    return read_dataset("synthetic", synth_root, "train")


def assert_sample(sample: dict, n: int = 98, k: int = 6) -> None:
    assert set(sample) == {"image", "landmarks", "subsets", "index"}
    assert sample["image"].shape == (3, S, S) and sample["image"].dtype == torch.float32
    assert sample["landmarks"].shape == (n, 2) and sample["landmarks"].dtype == torch.float32
    assert sample["subsets"].shape == (k,) and sample["subsets"].dtype == torch.bool
    assert sample["index"].shape == () and sample["index"].dtype == torch.int64


def assert_same(a: dict, b: dict) -> None:
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_sample_contract_and_stateless_augmentation(train_records) -> None:
    ds = FaceDataset(train_records, LAYOUT, input_size=S, train=True, seed=5)
    n = len(ds)
    s = ds[3]
    assert_sample(s)
    assert int(s["index"]) == 3
    assert_same(s, ds[3])
    # a fresh dataset (e.g. a resumed run, another worker) gives the same sample for (seed, epoch, index)
    assert_same(ds[2 * n + 3], FaceDataset(train_records, LAYOUT, input_size=S, train=True, seed=5).get(3, epoch=2))
    other_epoch = ds[n + 3]
    assert int(other_epoch["index"]) == 3
    assert not torch.equal(s["image"], other_epoch["image"])
    assert not torch.equal(s["image"], FaceDataset(train_records, LAYOUT, input_size=S, train=True, seed=6)[3]["image"])
    # evaluation: crop only, the epoch does not matter
    ev = FaceDataset(train_records, LAYOUT, input_size=S, train=False)
    assert_same(ev[3], ev[n + 3])
    assert_same(ev[-1], ev[n - 1])
    with pytest.raises(IndexError):
        ev[-n - 1]


def test_landmarks_outside_crop_are_kept(train_records) -> None:
    rec = train_records[0]
    lm = rec.landmarks.copy()
    box_w = rec.bbox[2] - rec.bbox[0]
    lm[0] = rec.bbox[:2] - 2.0 * box_w  # far up-left of the crop
    lm[1] = rec.bbox[2:] + 1.5 * box_w  # far down-right (may also leave the image)
    far = FaceRecord(rec.image_path, lm, rec.bbox, rec.subsets)
    for train in (False, True):
        out = FaceDataset([far], LAYOUT, input_size=S, train=train, aug=dict(rotation_prob=0.0, flip_prob=0.0))[0]
        pts = out["landmarks"]
        assert torch.isfinite(pts).all()
        assert (pts[0] < 0).all() and (pts[1] > S).all()
        inside = ((pts >= 0) & (pts < S)).all(-1)
        assert inside[2:].float().mean() > 0.9


def test_dataset_rejects_wrong_layout(train_records) -> None:
    with pytest.raises(ValueError, match="98 landmarks; layout '300w' expects 68"):
        FaceDataset(train_records, get_layout("300w"))


def test_epoch_sampler_shards_and_shuffles() -> None:
    data = list(range(10))
    shards = [list(EpochSampler(data, seed=1, num_replicas=3, rank=r)) for r in range(3)]
    assert all(len(s) == 4 for s in shards)  # padded to a multiple of 3, like DistributedSampler
    assert set(sum(shards, [])) == set(range(10))
    s = EpochSampler(data, seed=1, num_replicas=1, rank=0)
    e0 = list(s)
    s.set_epoch(3)
    e3 = list(s)
    assert sorted(e0) == list(range(10)) and sorted(e3) == list(range(30, 40))
    assert [k - 30 for k in e3] != e0
    assert list(EpochSampler(data, seed=1, num_replicas=1, rank=0)) == e0
    assert list(EpochSampler(data, shuffle=False, num_replicas=1, rank=0)) == list(range(10))


def test_worker_count_does_not_change_batches(train_records) -> None:
    ds = FaceDataset(train_records[:8], LAYOUT, input_size=S, train=True, seed=3)

    def epochs(num_workers: int) -> list[list[dict]]:
        sampler = EpochSampler(ds, seed=3, num_replicas=1, rank=0)
        loader = DataLoader(
            ds, batch_size=3, sampler=sampler, num_workers=num_workers, persistent_workers=num_workers > 0
        )
        out = []
        for epoch in (0, 1):
            sampler.set_epoch(epoch)  # persistent workers must still see the new epoch
            out.append(list(loader))
        return out

    a, b = epochs(0), epochs(2)
    for ea, eb in zip(a, b):
        assert len(ea) == len(eb) == 3
        for ba, bb in zip(ea, eb):
            assert_same(ba, bb)
    assert not torch.equal(a[0][0]["image"], a[1][0]["image"])
    # epoch 1 of the loader is exactly the dataset's epoch-1 augmentation
    first = a[1][0]
    assert_same({k: v[0] for k, v in first.items()}, ds.get(int(first["index"][0]), epoch=1))


def test_datamodule_batches_and_subset_loaders(synth_root) -> None:
    dm = FaceDataModule(
        dataset="synthetic",
        root=synth_root,
        input_size=S,
        batch_size=4,
        eval_batch_size=3,
        num_workers=0,
        n_train=16,
        n_test=8,
        val_fraction=0.25,
    )
    assert dm.layout.name == "wflw" and dm.num_landmarks == 98
    assert dm.subset_names == ("pose", "expression", "illumination", "makeup", "occlusion", "blur")
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.train_set) == 12 and len(dm.val_set) == 4
    train_paths = {r.image_path for r in dm.train_set.records}
    assert not train_paths & {r.image_path for r in dm.val_set.records}
    batches = list(dm.train_dataloader())
    assert len(batches) == 3
    b = batches[0]
    assert set(b) == {"image", "landmarks", "subsets", "index"}
    assert b["image"].shape == (4, 3, S, S) and b["image"].dtype == torch.float32
    assert b["landmarks"].shape == (4, 98, 2) and b["landmarks"].dtype == torch.float32
    assert b["subsets"].shape == (4, 6) and b["subsets"].dtype == torch.bool
    assert b["index"].shape == (4,) and b["index"].dtype == torch.int64
    assert sorted(torch.cat([x["index"] for x in batches]).tolist()) == list(range(12))
    vb = next(iter(dm.val_dataloader()))
    assert vb["image"].shape == (3, 3, S, S)
    # the held-out faces are the same for another run (other augmentation seed)
    dm2 = FaceDataModule(
        dataset="synthetic",
        root=synth_root,
        input_size=S,
        n_train=16,
        n_test=8,
        val_fraction=0.25,
        seed=9,
        num_workers=0,
    )
    dm2.setup("fit")
    assert [r.image_path for r in dm2.val_set.records] == [r.image_path for r in dm.val_set.records]

    dm.setup("test")
    test_batches = list(dm.test_dataloader())
    assert sum(len(x["index"]) for x in test_batches) == 8
    flags = torch.cat([x["subsets"] for x in test_batches])
    assert flags.shape == (8, len(dm.subset_names)) and flags.any()  # the synthetic test set has subset members


def test_validation_on_test_split_when_no_holdout(synth_root) -> None:
    dm = FaceDataModule(
        dataset="synthetic", root=synth_root, input_size=S, n_train=16, n_test=8, val_fraction=0.0, num_workers=0
    )
    dm.setup("fit")
    assert len(dm.train_set) == 16 and dm.val_set is dm.test_set and len(dm.val_set) == 8


def test_hydra_config_instantiates(synth_root) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    conf_dir = Path(__file__).resolve().parents[1] / "conf"
    for name in ("synthetic", "wflw", "300w", "cofw"):
        # Composed (not loaded as YAML): each data config extends conf/data/_base.yaml.
        with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
            cfg = compose("train", [f"data={name}", "~experiment", f"paths.data_dir={synth_root.parent}"])
        dm = instantiate(cfg.data.datamodule)
        assert isinstance(dm, FaceDataModule)
        assert dm.num_landmarks == cfg.data.num_landmarks and dm.layout.name == cfg.data.layout
        assert dm.input_size == cfg.data.input_size == 256
    assert dm.aug.occlusion_size == (0.1, 0.4)


@pytest.mark.slow  # Trainer.fit
def test_lightning_trainer_sets_the_epoch(synth_root) -> None:
    import lightning as L

    seen: dict[int, list[torch.Tensor]] = {}

    class Probe(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch, _):
            seen.setdefault(self.current_epoch, []).append(
                torch.stack([batch["index"].float(), batch["image"].flatten(1).sum(1)], 1)
            )
            return (self.w * batch["image"].mean()).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    dm = FaceDataModule(
        dataset="synthetic",
        root=synth_root,
        input_size=32,
        batch_size=4,
        num_workers=0,
        n_train=16,
        n_test=8,
        val_fraction=0.0,
        seed=1,
    )
    trainer = L.Trainer(
        max_epochs=2,
        limit_train_batches=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
    )
    trainer.fit(Probe(), datamodule=dm)
    assert set(seen) == {0, 1}
    for epoch, rows in seen.items():
        for idx, total in torch.cat(rows).tolist():
            ref = dm.train_set.get(int(idx), epoch=epoch)["image"].sum()
            assert abs(total - float(ref)) < 1e-2 * max(1.0, abs(float(ref)))


def test_round_labels_and_pickling(train_records) -> None:
    import pickle

    from hih.data.geometry import apply_affine, crop_matrix

    rec = train_records[1]
    out = FaceDataset([rec], LAYOUT, input_size=S, round_labels=True)[0]["landmarks"].numpy()
    m = crop_matrix(rec.bbox, S, scale=1.25)
    np.testing.assert_allclose(out, apply_affine(np.round(rec.landmarks), m), atol=1e-5)
    assert np.abs(out - apply_affine(rec.landmarks, m)).max() > 1e-3
    # datasets travel to spawned workers / DDP processes by pickle
    ds = FaceDataset(train_records[:2], LAYOUT, input_size=S, train=True, seed=2)
    ds[0]
    assert_same(pickle.loads(pickle.dumps(ds))[5], ds[5])


def test_bad_box_names_the_file(train_records) -> None:
    rec = train_records[0]
    bad = FaceRecord(rec.image_path, rec.landmarks, np.array([5, 5, 5, 5], np.float32), rec.subsets)
    with pytest.raises(ValueError, match=rf"{rec.image_path.name}.*empty crop"):
        FaceDataset([bad], LAYOUT, input_size=S)[0]
