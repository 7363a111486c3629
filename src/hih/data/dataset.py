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
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler

from hih.data.layouts import Layout
from hih.data.records import FaceRecord, load_image
from hih.data.transforms import AugmentConfig, EvalTransform, TrainTransform, sample_rng, to_tensor

__all__ = ["EpochSampler", "FaceDataset"]


class FaceDataset(Dataset):
    """Faces cropped (and, for training, augmented) to a square network input.

    records: the split's faces (:class:`hih.data.records.FaceRecord`).
    layout: the landmark layout; its ``flip_perm`` re-indexes flipped landmarks.
    input_size: S. train: augment (else crop only). seed: the augmentation seed.
    crop_scale: crop side = crop_scale * max(box width, height).
    aug: :class:`~hih.data.transforms.AugmentConfig` or a mapping of its fields.
    round_labels: round the raw landmarks to integer pixels before the transform (the
        paper's ideal-condition assumption); off by default.

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
    ):
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
        image = load_image(rec.image_path)
        landmarks = np.round(rec.landmarks) if self.round_labels else rec.landmarks
        try:
            if self.train_transform is not None:
                img, pts, _ = self.train_transform(image, landmarks, rec.bbox, sample_rng(self.seed, epoch, index))
            else:
                img, pts, _ = self.eval_transform(image, landmarks, rec.bbox)
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
        world, me = _world()
        super().__init__(
            dataset,
            num_replicas=world if num_replicas is None else num_replicas,
            rank=me if rank is None else rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
        )

    def __iter__(self) -> Iterator[int]:
        base = self.epoch * len(self.dataset)  # type: ignore[arg-type]
        return iter([base + int(i) for i in super().__iter__()])
