"""The LightningDataModule: splits, datasets and loaders for one face dataset, and the label encoding.

Loaders ship images and landmark coordinates only (see ``docs/contracts.md``): a batch is
``{"image": (B, 3, S, S) float32, "landmarks": (B, N, 2) float32, "subsets": (B, K) bool,
"index": (B,) int64}``. Once Lightning has moved a fit / validate / test batch to the training device,
``on_after_batch_transfer`` adds ``"targets"``: the codec's ``encode(landmarks)`` built there
(:mod:`hih.data.targets`), never in the loader workers.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from hih.data.crop_cache import FORMATS, CropCache, CropSettings, ensure_crop_cache
from hih.data.dataset import EpochSampler, FaceDataset, ResumableDataLoader, ShardSampler, _world
from hih.data.datasets import get_dataset, get_layout
from hih.data.geometry import CROP_FROM
from hih.data.layouts import Layout
from hih.data.records import FaceRecord
from hih.data.targets import add_targets, encodes_now
from hih.data.transforms import AugmentConfig

__all__ = ["FaceDataModule"]


def _worker_init(_: int) -> None:
    # Each worker is one of several processes on the same cores: keep OpenCV single-threaded.
    import cv2

    cv2.setNumThreads(1)


class FaceDataModule(L.LightningDataModule):
    """One face-alignment dataset as train / val / test loaders.

    dataset: a registered dataset (:mod:`hih.data.datasets`: "synthetic", "wflw", "300w", "cofw", ...);
        root: its folder (generated datasets such as "synthetic" are written there on first use).
    layout: landmark layout name or :class:`Layout`; None picks the dataset's own.
    input_size: S. batch_size / eval_batch_size (default batch_size): loader batch sizes.
    num_workers, pin_memory, persistent_workers, prefetch_factor: DataLoader options (persistent and
        prefetch only when num_workers > 0; prefetch_factor None: torch's default, 2 batches per worker).
    seed: augmentation seed; a sample's augmentation depends on (seed, epoch, index) only.
    crop_scale: crop side = crop_scale * max(box width, height).
    crop_from: "box" (default: the dataset's face box) or "landmarks": the tight box of each
        face's ground-truth landmarks, for train and test alike. The authors' code crops so
        (with crop_scale 1.2), an oracle crop that a deployed detector cannot give; the paper
        says RetinaFace boxes.
    augment: augment the training set; aug: :class:`AugmentConfig` fields (mapping).
    round_labels: round raw landmarks to integers before cropping (paper's ideal condition).
    val_fraction: share of the training split held out for validation, chosen by a fixed
        permutation (``val_seed``) so that every run of a sweep validates on the same faces.
        0 validates on the test split instead (as the reference implementations do).
    train_split, test_split: split names passed to the reader (300W: "test" = "full",
        "common", "challenge").
    drop_last: drop the last incomplete training batch (BatchNorm dislikes tiny batches);
        ignored when the training set is smaller than one batch.
    codec: the model's codec (:class:`hih.codecs.base.Codec`; the Hydra configs give it
        ``${model.codec}``): fit / validate / test batches get ``batch["targets"] = codec.encode(landmarks)``
        on the device they were moved to. None: batches keep coordinates only (enough for test,
        predict and plots; FaceAlignmentModule cannot train on them).
    cache: read the faces through the crop cache (:mod:`hih.data.crop_cache`): each face decoded once per
        split, its crop stored under ``cache_dir`` (default ``<root's parent>/.cache/crops``) and reused by
        every later run; the configs turn it on for real-size photos (WFLW, 300W, COFW, synthetic_photos).
    cache_format: "raw" (memory-mapped uint8 crops, fastest) or "jpeg" (encoded crops, about 10x smaller).
    dataset_options: the dataset's own options (:attr:`DatasetInfo.options`, e.g. the synthetic set's
        ``n_train``, ``n_test``, ``synthetic_seed``); others raise.
    """

    def __init__(
        self,
        dataset: str = "synthetic",
        root: str | Path = "data/synthetic",
        layout: str | Layout | None = None,
        input_size: int = 256,
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        num_workers: int = 2,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        prefetch_factor: int | None = None,
        seed: int = 0,
        crop_scale: float = 1.25,
        crop_from: str = "box",
        augment: bool = True,
        aug: AugmentConfig | Mapping[str, Any] | None = None,
        round_labels: bool = False,
        val_fraction: float = 0.05,
        val_seed: int = 0,
        train_split: str = "train",
        test_split: str = "test",
        drop_last: bool = True,
        codec: Any = None,
        cache: bool = False,
        cache_dir: str | Path | None = None,
        cache_format: str = "raw",
        **dataset_options: Any,
    ):
        super().__init__()
        self.info = get_dataset(dataset)
        self.dataset_name = self.info.name
        self.dataset_options = self.info.check_options(dataset_options)
        self.root = Path(root).expanduser()
        if layout is None:
            layout = self.info.layout
        self.layout: Layout = layout if isinstance(layout, Layout) else get_layout(layout)
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        if batch_size < 1 or (eval_batch_size is not None and eval_batch_size < 1):
            raise ValueError(f"batch sizes must be >= 1, got {batch_size} / {eval_batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.input_size = int(input_size)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)
        self.persistent_workers = bool(persistent_workers) and self.num_workers > 0
        self.prefetch_factor = int(prefetch_factor) if prefetch_factor is not None and self.num_workers > 0 else None
        self.seed = int(seed)
        self.crop_scale = float(crop_scale)
        if not self.crop_scale > 0:
            raise ValueError(f"crop_scale must be > 0, got {crop_scale}")
        if crop_from not in CROP_FROM:
            raise ValueError(f"crop_from must be one of {CROP_FROM}, got {crop_from!r}")
        self.crop_from = str(crop_from)
        self.augment = bool(augment)
        self.aug = AugmentConfig.from_any(aug)  # validate early, before any worker starts
        self.round_labels = bool(round_labels)
        self.val_fraction, self.val_seed = float(val_fraction), int(val_seed)
        self.train_split, self.test_split = train_split, test_split
        self.drop_last = bool(drop_last)
        self.codec = codec
        self.cache = bool(cache)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else self.root.parent / ".cache" / "crops"
        if cache_format not in FORMATS:
            raise ValueError(f"cache_format must be one of {FORMATS}, got {cache_format!r}")
        self.cache_format = str(cache_format)
        # Into checkpoints; not logged (keys may clash with the module's). The codec is an object
        # (checkpoints load with weights_only=True); the module's own hparams and config record it.
        self.save_hyperparameters(ignore=["codec"], logger=False)

        self.train_set: FaceDataset | None = None
        self.val_set: FaceDataset | None = None
        self.test_set: FaceDataset | None = None

    # ---- what other parts read -------------------------------------------------------------
    @property
    def subset_names(self) -> tuple[str, ...]:
        return tuple(self.layout.subset_names)

    @property
    def num_landmarks(self) -> int:
        return int(self.layout.num_landmarks)

    # ---- Lightning hooks -------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Write a generated dataset on first use (Lightning runs this on one process per node)."""
        if self.info.prepare is not None:
            self.info.prepare(self.root, **self.dataset_options)
        elif not self.root.is_dir():
            raise FileNotFoundError(
                f"{self.dataset_name} dataset root {self.root} does not exist; expected the dataset's folder there "
                f"(set data.datamodule.root=... or paths.data_dir=...)"
            )

    def setup(self, stage: str | None = None) -> None:
        if self.info.prepare is not None and _world()[0] == 1:
            self.prepare_data()  # stand-alone use (notebooks, scripts) without a Trainer; idempotent
        if stage in (None, "fit", "validate") and self.train_set is None:
            records = self.read_split(self.train_split)
            train_idx, val_idx = self._split_indices(len(records))
            train_records = [records[i] for i in train_idx]
            self.train_set = self._dataset(
                train_records, train=self.augment, crops=self._crops(train_records, self.train_split, self.augment)
            )
            if len(val_idx):
                # Their own evaluation crops (the network input itself): val/nme, which picks the best
                # checkpoint, is the same with and without the cache.
                val_records = [records[i] for i in val_idx]
                self.val_set = self._dataset(
                    val_records, train=False, crops=self._crops(val_records, f"{self.train_split}-val", train=False)
                )
        need_test = stage in (None, "test", "predict") or self.val_fraction == 0
        if need_test and self.test_set is None:
            records = self.read_split(self.test_split)
            self.test_set = self._dataset(
                records, train=False, crops=self._crops(records, self.test_split, train=False)
            )
        if self.val_fraction == 0:
            self.val_set = self.test_set

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Add the codec's targets on the batch's device (not for predict; see :mod:`hih.data.targets`)."""
        return add_targets(batch, self.codec) if encodes_now(self.trainer) else batch

    def read_split(self, split: str) -> list[FaceRecord]:
        """The records of one split.

        :attr:`DatasetInfo.splits`: train, test; 300W also common, challenge, full, private.
        """
        records = self.info.read(self.root, split)
        if not records:
            raise ValueError(f"{self.dataset_name} split {split!r} under {self.root} has no faces")
        return records

    def _split_indices(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        n_val = int(round(self.val_fraction * n)) if self.val_fraction > 0 else 0
        if self.val_fraction > 0:
            n_val = min(max(n_val, 1), n - 1)
        if n_val <= 0:
            return np.arange(n), np.arange(0)
        perm = np.random.default_rng(np.random.SeedSequence([self.val_seed, n])).permutation(n)
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])

    def crop_settings(self, train: bool) -> CropSettings:
        return CropSettings.for_dataset(
            self.input_size, self.crop_scale, self.crop_from, self.round_labels, self.aug, train
        )

    def _crops(self, records: list[FaceRecord], split: str, train: bool) -> CropCache | None:
        """The split's crop cache (built on first use, under a lock: every rank may call this), or None."""
        if not self.cache:
            return None
        return ensure_crop_cache(
            records,
            self.crop_settings(train),
            self.cache_dir,
            self.dataset_name,
            split,
            fmt=self.cache_format,
            progress=_world()[1] == 0,
        )

    def _dataset(self, records: list[FaceRecord], train: bool, crops: CropCache | None = None) -> FaceDataset:
        return FaceDataset(
            records,
            self.layout,
            input_size=self.input_size,
            train=train,
            seed=self.seed,
            crop_scale=self.crop_scale,
            crop_from=self.crop_from,
            aug=self.aug,
            round_labels=self.round_labels,
            crops=crops,
        )

    # ---- loaders ---------------------------------------------------------------------------
    def _loader(self, dataset, batch_size: int, loader_cls: type[DataLoader] = DataLoader, **kw: Any) -> DataLoader:
        return loader_cls(
            dataset,
            batch_size=batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            worker_init_fn=_worker_init if self.num_workers > 0 else None,
            prefetch_factor=self.prefetch_factor,
            **kw,
        )

    def _require(self, name: str) -> FaceDataset:
        ds = getattr(self, name)
        if ds is None:
            stage = {"train_set": "fit", "val_set": "fit", "test_set": "test"}[name]
            raise RuntimeError(f"FaceDataModule.{name} is not set up; call setup({stage!r}) first")
        return ds

    def train_dataloader(self) -> DataLoader:
        ds = self._require("train_set")
        # EpochSampler is a DistributedSampler: Lightning leaves it in place and calls set_epoch on it.
        sampler = EpochSampler(ds, shuffle=True, seed=self.seed)
        drop_last = self.drop_last and len(sampler) >= self.batch_size
        # Resumable: checkpoints record the place in the epoch, so a run resumes mid-epoch exactly.
        return self._loader(ds, self.batch_size, ResumableDataLoader, sampler=sampler, drop_last=drop_last)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self._require("val_set"))

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self._require("test_set"))

    def _eval_loader(self, ds: FaceDataset) -> DataLoader:
        # Unpadded contiguous shards under DDP (a DistributedSampler, so Lightning keeps it): every
        # face is evaluated exactly once and the gathered metrics equal the single-process ones.
        return self._loader(ds, self.eval_batch_size, sampler=ShardSampler(ds))

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()
