"""The face dataset and its epoch-aware sampler.

Epoch handling: augmentation of a sample is a function of (seed, epoch, index), and the
epoch must be known inside DataLoader workers (persistent ones included) and on every DDP
rank. Rather than mutating state in the workers, the training sampler encodes the epoch
into the key it yields: ``key = epoch * len(dataset) + index``, and
:meth:`FaceDataset.__getitem__` decodes it. :class:`EpochSampler` is a
``DistributedSampler`` subclass, so Lightning neither wraps nor replaces it
(``use_distributed_sampler`` only wraps samplers that are not ``DistributedSampler``s),
calls its ``set_epoch`` at the start of every training epoch (with the restored epoch on
resume), and the sampler shuffles with ``seed + epoch`` and shards by rank itself, exactly
like torch's ``DistributedSampler``. Plain integer keys below ``len(dataset)`` (any other
sampler, evaluation) mean epoch 0.

Mid-epoch resume: :class:`ResumableDataLoader` has ``state_dict`` / ``load_state_dict``, so
Lightning stores it in every checkpoint (``loops.fit_loop.state_dict.combined_loader``) and
hands it back before the resumed epoch starts; the sampler then starts that epoch at the first
batch not yet trained on. Since a sample's augmentation depends on (seed, epoch, index) only,
the resumed run sees exactly the batches the uninterrupted one would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from hih.data.crop_cache import CropCache, CropSettings
from hih.data.geometry import CROP_FROM, crop_box
from hih.data.layouts import Layout
from hih.data.records import FaceRecord, load_image
from hih.data.transforms import AugmentConfig, EvalTransform, TrainTransform, sample_rng, to_tensor

__all__ = ["EpochSampler", "FaceDataset", "ResumableDataLoader", "ShardSampler"]


class FaceDataset(Dataset):
    """Faces cropped (and, for training, augmented) to a square network input.

    records: the split's faces (:class:`hih.data.records.FaceRecord`).
    layout: the landmark layout; its ``flip_perm`` re-indexes flipped landmarks.
    input_size: S. train: augment (else crop only). seed: the augmentation seed.
    crop_scale: crop side = crop_scale * max(box width, height).
    crop_from: "box" (the record's face box, default) or "landmarks" (the tight box of the face's
        own ground-truth landmarks, train and test: the authors' oracle crop, with crop_scale 1.2).
    aug: :class:`~hih.data.transforms.AugmentConfig` or a mapping of its fields.
    round_labels: round the raw landmarks to integer pixels before the transform (the
        paper's ideal-condition assumption); off by default.
    crops: a :class:`hih.data.crop_cache.CropCache` aligned with ``records`` (built with settings that
        cover this dataset's): images come from it instead of the photos; None reads the photos.

    ``dataset[key]`` with ``key = epoch * len(dataset) + index`` returns a dict:
      ``"image"`` (3, S, S) float32 ImageNet-normalised; ``"landmarks"`` (N, 2) float32 in
      input pixels; ``"subsets"`` (K,) bool; ``"index"`` int64 scalar (index in the split).
    Landmarks that fall outside the input after cropping are returned where they are (not
    clipped, not dropped): the codec clips them and gives them weight 0, and metrics still
    see the true position.
    """

    def __init__(
        self,
        records: Sequence[FaceRecord],
        layout: Layout,
        input_size: int = 256,
        train: bool = False,
        seed: int = 0,
        crop_scale: float = 1.25,
        aug: AugmentConfig | Mapping[str, Any] | None = None,
        round_labels: bool = False,
        border: str | None = None,
        crop_from: str = "box",
        crops: CropCache | None = None,
    ):
        if crop_from not in CROP_FROM:
            raise ValueError(f"crop_from must be one of {CROP_FROM}, got {crop_from!r}")
        self.crop_from = crop_from
        self.records = list(records)
        self.layout = layout
        self.input_size = int(input_size)
        self.train = bool(train)
        self.seed = int(seed)
        self.round_labels = bool(round_labels)
        for i, r in enumerate(self.records):
            if r.num_landmarks != layout.num_landmarks:
                raise ValueError(
                    f"record {i} ({r.image_path}) has {r.num_landmarks} landmarks; layout {layout.name!r} expects "
                    f"{layout.num_landmarks}"
                )
            if r.subsets.shape[0] != len(layout.subset_names):
                raise ValueError(
                    f"record {i} ({r.image_path}) has {r.subsets.shape[0]} subset flags; layout {layout.name!r} "
                    f"expects {len(layout.subset_names)} ({', '.join(layout.subset_names)})"
                )
        aug_cfg = AugmentConfig.from_any(aug)
        if border is not None:  # one border mode for train and eval unless asked otherwise
            aug_cfg = AugmentConfig.from_any({**aug_cfg.to_dict(), "border": border})
        self.aug = aug_cfg
        self.eval_transform = EvalTransform(self.input_size, crop_scale, border=aug_cfg.border)
        self.train_transform = TrainTransform(self.input_size, layout.flip_perm, crop_scale, aug_cfg) if train else None
        self.crops = crops
        if crops is not None:
            needed = self.crop_settings()
            if len(crops) != len(self.records):
                raise ValueError(f"the crop cache holds {len(crops)} faces, the dataset {len(self.records)}")
            if not crops.settings.covers(needed):
                raise ValueError(
                    f"the crop cache {crops.folder} was built for {crops.settings}, which does not cover "
                    f"this dataset's {needed}"
                )

    def crop_settings(self) -> CropSettings:
        """What a crop cache must cover to serve this dataset."""
        return CropSettings.for_dataset(
            self.input_size, self.eval_transform.crop_scale, self.crop_from, self.round_labels, self.aug, self.train
        )

    def __len__(self) -> int:
        return len(self.records)

    def decode_key(self, key: int) -> tuple[int, int]:
        """``key -> (epoch, index)`` for ``key = epoch * len(self) + index``."""
        n = len(self.records)
        key = int(key)
        if key < 0:
            key += n  # python-style negative index, epoch 0
        if key < 0 or n == 0:
            raise IndexError(f"sample key {key} out of range for a dataset of {n} faces")
        epoch, index = divmod(key, n)
        return epoch, index

    def __getitem__(self, key: int) -> dict[str, torch.Tensor]:
        epoch, index = self.decode_key(key)
        return self.get(index, epoch)

    def get(self, index: int, epoch: int = 0) -> dict[str, torch.Tensor]:
        """Sample ``index`` as augmented in ``epoch`` (epoch is ignored when not training)."""
        rec = self.records[index]
        image, source = self.crops.read(index) if self.crops is not None else (load_image(rec.image_path), None)
        landmarks = np.round(rec.landmarks) if self.round_labels else rec.landmarks
        try:
            box = crop_box(self.crop_from, rec.bbox, landmarks)
            if self.train_transform is not None:
                img, pts, _ = self.train_transform(image, landmarks, box, sample_rng(self.seed, epoch, index), source)
            else:
                img, pts, _ = self.eval_transform(image, landmarks, box, source)
        except ValueError as e:  # e.g. a degenerate face box: name the face it came from
            raise ValueError(f"face {index} ({rec.image_path}): {e}") from e
        return {
            "image": to_tensor(img),
            "landmarks": torch.from_numpy(np.ascontiguousarray(pts, dtype=np.float32)),
            "subsets": torch.from_numpy(np.ascontiguousarray(rec.subsets, dtype=bool)),
            "index": torch.tensor(index, dtype=torch.int64),
        }

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        # Keys never run out (they encode epochs), so define iteration explicitly: epoch 0, once.
        return (self.get(i) for i in range(len(self)))


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def _replicas(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    """Explicit (num_replicas, rank), defaulting to the initialised process group."""
    world, me = _world()
    return (world if num_replicas is None else num_replicas), (me if rank is None else rank)


class EpochSampler(DistributedSampler):
    """Shuffles with ``seed + epoch``, shards by rank, and yields ``epoch * len(dataset) + index``.

    num_replicas / rank default to the initialised process group (else 1 / 0), read when
    the sampler is built, so build it inside ``train_dataloader`` (after DDP set-up), as
    Lightning does. Padding / drop_last across ranks follow ``DistributedSampler``.
    """

    def __init__(
        self,
        dataset: Dataset,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        num_replicas: int | None = None,
        rank: int | None = None,
    ):
        super().__init__(
            dataset,
            *_replicas(num_replicas, rank),
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
        )
        self._resume: tuple[int, int] | None = None

    def resume_at(self, epoch: int, start: int) -> None:
        """Begin the next pass over ``epoch`` at position ``start`` (samples already trained on).

        Applies once, and only if that pass is for ``epoch``: a stale position never skips
        data of another epoch.
        """
        if start < 0:
            raise ValueError(f"resume position must be >= 0, got {start}")
        self._resume = (int(epoch), int(start))

    def __iter__(self) -> Iterator[int]:
        base = self.epoch * len(self.dataset)  # type: ignore[arg-type]
        keys = [base + int(i) for i in super().__iter__()]
        resume, self._resume = self._resume, None
        if resume is not None and resume[0] == self.epoch:
            keys = keys[resume[1] :]
        return iter(keys)


class ResumableDataLoader(DataLoader):
    """A DataLoader over an :class:`EpochSampler` whose place in the epoch survives checkpoints.

    ``state_dict()`` -> ``{"epoch", "batches"}``: the batches this loader has handed out in the
    current pass. Lightning pulls batches without read-ahead for sized loaders, so that is the
    number of batches trained on. ``load_state_dict`` makes the next pass over that epoch skip
    them (indices are skipped in the sampler: no image of a skipped batch is loaded).

    ``iter(loader)`` is lazy: the underlying iterator (and its workers' index prefetch) is
    created at the first ``next()``, after Lightning has called ``sampler.set_epoch`` for the
    epoch about to run. Lightning calls ``iter()`` once before ``set_epoch`` when a fit starts,
    which with workers would otherwise shuffle a resumed epoch with the sampler's initial epoch.
    """

    def __init__(self, dataset: Dataset, *args: Any, sampler: EpochSampler, **kwargs: Any):
        if not isinstance(sampler, EpochSampler):
            raise TypeError(f"ResumableDataLoader needs an EpochSampler, got {type(sampler).__name__}")
        super().__init__(dataset, *args, sampler=sampler, **kwargs)
        self._batches = 0

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        return self._batches_from_first_next()

    def _batches_from_first_next(self) -> Iterator[Any]:
        sampler: EpochSampler = self.sampler  # type: ignore[assignment]
        resume = sampler._resume
        self._batches = resume[1] // self.batch_size if resume is not None and resume[0] == sampler.epoch else 0
        for batch in super().__iter__():
            self._batches += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": int(self.sampler.epoch), "batches": int(self._batches)}  # type: ignore[attr-defined]

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        missing = {"epoch", "batches"} - set(state)
        if missing:
            raise KeyError(f"dataloader state from the checkpoint lacks {sorted(missing)}; got keys {sorted(state)}")
        epoch, batches = int(state["epoch"]), int(state["batches"])
        self.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        self.sampler.resume_at(epoch, batches * self.batch_size)  # type: ignore[attr-defined]


class ShardSampler(DistributedSampler):
    """Evaluation sampler: rank ``r`` of ``R`` gets one contiguous block of the indices, unpadded.

    torch's ``DistributedSampler`` (what Lightning injects under DDP) pads the shards to equal
    length with repeated faces, which would count those faces twice in the test metrics. Here
    the first ``n % R`` ranks get one face more than the others and nothing is repeated; the
    metrics' ``"cat"`` gather concatenates the ranks' samples in rank order, i.e. in dataset
    order, so distributed metrics equal the single-process ones exactly. Being a
    ``DistributedSampler``, Lightning leaves it in place (``use_distributed_sampler``).

    Every rank needs at least one face: DDP synchronises buffers in the first forward of an
    evaluation loop, so a rank with no batch would leave the others waiting.
    """

    def __init__(self, dataset: Dataset, num_replicas: int | None = None, rank: int | None = None):
        super().__init__(
            dataset,
            *_replicas(num_replicas, rank),
            shuffle=False,
            drop_last=False,
        )
        n = len(dataset)  # type: ignore[arg-type]
        if n < self.num_replicas:
            raise ValueError(
                f"the evaluation set has {n} faces, fewer than the {self.num_replicas} processes; each process "
                f"needs at least one face (use fewer devices for this set)"
            )
        base, extra = divmod(n, self.num_replicas)
        self.start = self.rank * base + min(self.rank, extra)
        self.num_samples = base + (1 if self.rank < extra else 0)
        self.total_size = n

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.start + self.num_samples))

    def __len__(self) -> int:
        return self.num_samples
