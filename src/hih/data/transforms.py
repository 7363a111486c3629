"""Sample pipelines: crop (+ geometric augmentation) in one affine warp, photometric
augmentation with albumentations, ImageNet normalisation to a float32 CHW tensor.

Paper 4.1: horizontal flip (50 %), rotation +-30 degrees (50 %), occlusion (50 %) and
Gaussian blur (30 %), then resize to 256 x 256. Here flip, rotation and a mild scale /
translation jitter are sampled by :class:`TrainTransform` and composed into the crop
matrix (:func:`hih.data.geometry.crop_matrix`), so the image is resampled once and the
landmarks move exactly with it. Flipping re-indexes the landmarks with the layout's
``flip_perm`` (``flipped = mirrored[flip_perm]``). Occlusion (one random rectangle filled
with one random colour), Gaussian blur and a mild colour jitter run as an albumentations
``Compose`` on the cropped image; they do not move landmarks.

Randomness is stateless: every draw for a sample comes from
``np.random.default_rng(np.random.SeedSequence([seed, epoch, index]))`` (see
:func:`sample_rng`), including albumentations' draws (its generators are replaced before
each call), so a sample depends on (seed, epoch, index) only: not on the worker that
loads it, the number of workers, or what was loaded before.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch

# No network call at import (albumentations checks PyPI for updates otherwise); clusters are offline.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
import albumentations as A  # noqa: E402

from hih.data.geometry import apply_affine, crop_matrix, warp_image  # noqa: E402

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "AugmentConfig",
    "EvalTransform",
    "TrainTransform",
    "denormalize",
    "sample_rng",
    "to_tensor",
]

_ALBU_MAJOR = int(A.__version__.split(".")[0])
if _ALBU_MAJOR < 2:  # CoarseDropout's fill/ranges and Compose.set_random_state are the 2.x API
    raise ImportError(
        f"hih needs albumentations >= 2.0 (MIT), found {A.__version__}; pip install 'albumentations>=2,<3'"
    )

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Normalisation folded into one multiply-add on 0..255 values.
_MUL = torch.tensor([1.0 / (255.0 * s) for s in IMAGENET_STD], dtype=torch.float32).view(3, 1, 1)
_ADD = torch.tensor([-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)], dtype=torch.float32).view(3, 1, 1)


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator for one sample: a pure function of (seed, epoch, index)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), int(index)]))


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 normalised with ImageNet mean/std."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"to_tensor expects an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}")
    # HWC -> CHW on uint8 first: converting a permuted (strided) tensor to float is 2x slower.
    t = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).to(torch.float32)
    return t.mul_(_MUL).add_(_ADD)


def denormalize(image: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_tensor` for display: (..., 3, H, W) float -> same shape in 0..1."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype, device=image.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return (image * std + mean).clamp(0, 1)


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation. Probabilities are per sample; ranges are uniform.

    flip_prob, rotation_prob, max_rotation (degrees): paper 4.1 (0.5, 0.5, 30).
    scale_jitter: the crop side is multiplied by U(1 - j, 1 + j).
    shift_jitter: the face moves by U(-j, j) * input_size along each axis.
    occlusion_prob, occlusion_size: one rectangle whose sides are U(occlusion_size) *
        input_size, filled with one random colour (paper: occlusion 50 %).
    blur_prob, blur_sigma: Gaussian blur with sigma U(blur_sigma) in input pixels (paper: 30 %).
    color_prob, brightness, contrast: mild brightness / contrast jitter (not in the paper;
        set color_prob=0 to drop it), albumentations' RandomBrightnessContrast limits.
    saturation, hue: ColorJitter saturation factor U(1 -+ saturation) and hue shift
        U(-hue, hue) (fraction of the colour wheel), applied with color_prob; 0 (default)
        leaves them out, as the HSV round trip costs about 1 ms per 256 x 256 sample.
    border: "constant" (black) or "replicate" for pixels the crop takes from outside the image.
    """

    flip_prob: float = 0.5
    rotation_prob: float = 0.5
    max_rotation: float = 30.0
    scale_jitter: float = 0.05
    shift_jitter: float = 0.05
    occlusion_prob: float = 0.5
    occlusion_size: tuple[float, float] = (0.1, 0.4)
    blur_prob: float = 0.3
    blur_sigma: tuple[float, float] = (0.5, 2.0)
    color_prob: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.0
    hue: float = 0.0
    border: str = "constant"

    def __post_init__(self) -> None:
        for name in ("flip_prob", "rotation_prob", "occlusion_prob", "blur_prob", "color_prob"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"AugmentConfig.{name} must be a probability in [0, 1], got {v}")
        for name in ("max_rotation", "scale_jitter", "shift_jitter", "brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                raise ValueError(f"AugmentConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.scale_jitter < 1:
            raise ValueError(f"AugmentConfig.scale_jitter must be in [0, 1), got {self.scale_jitter}")
        if not 0 <= self.hue <= 0.5:
            raise ValueError(f"AugmentConfig.hue must be in [0, 0.5], got {self.hue}")
        for name in ("occlusion_size", "blur_sigma"):
            lo, hi = getattr(self, name)
            object.__setattr__(self, name, (float(lo), float(hi)))
            if not 0 <= lo <= hi:
                raise ValueError(f"AugmentConfig.{name} must be a range (lo, hi) with 0 <= lo <= hi, got {(lo, hi)}")
        if not self.occlusion_size[1] <= 1:
            raise ValueError(f"AugmentConfig.occlusion_size is a fraction of the input, got {self.occlusion_size}")
        if self.border not in ("constant", "replicate"):
            raise ValueError(f"AugmentConfig.border must be 'constant' or 'replicate', got {self.border!r}")

    @classmethod
    def from_any(cls, value: AugmentConfig | Mapping[str, Any] | None) -> AugmentConfig:
        """Build from a config mapping (e.g. a Hydra DictConfig); unknown keys are an error."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            raise TypeError(f"augmentation config must be a mapping or AugmentConfig, got {type(value).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown augmentation option(s) {unknown}; expected some of {sorted(known)}")
        kw = {k: (tuple(v) if k in ("occlusion_size", "blur_sigma") else v) for k, v in value.items()}
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def warp_source(image: np.ndarray, matrix: np.ndarray, size: int, border: str, source: np.ndarray | None) -> np.ndarray:
    """Warp by ``matrix`` (photo -> input) an ``image`` that is the photo (``source`` None) or a crop of it whose
    pixels are ``source @ photo pixels`` (:mod:`hih.data.crop_cache`): then the warp is ``matrix @ inv(source)``,
    and a crop that already is the input (the evaluation cache) is copied as it is."""
    if source is None:
        return warp_image(image, matrix, size, border=border)
    m = matrix @ np.linalg.inv(source)
    if image.shape[:2] == (size, size) and np.allclose(m, np.eye(3), rtol=0.0, atol=1e-6):
        return np.array(image)
    return warp_image(image, m, size, border=border)


class EvalTransform:
    """Crop only: ``(image, landmarks, bbox) -> (S x S x 3 uint8, (N, 2) float32, (3, 3) matrix)``.

    ``source``: see :func:`warp_source` (the image is a cached crop; landmarks and bbox stay in photo pixels).
    """

    def __init__(self, input_size: int = 256, crop_scale: float = 1.25, border: str = "constant"):
        self.input_size = int(input_size)
        self.crop_scale = float(crop_scale)
        self.border = border

    def __call__(self, image: np.ndarray, landmarks: np.ndarray, bbox: np.ndarray, source: np.ndarray | None = None):
        crop, m = self.crop(image, bbox, source)
        return crop, apply_affine(landmarks, m), m

    def crop(
        self, image: np.ndarray, bbox: np.ndarray, source: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The face crop alone (hih-predict has no landmarks): (S x S x 3 uint8, (3, 3) matrix photo -> input)."""
        m = crop_matrix(bbox, self.input_size, scale=self.crop_scale)
        return warp_source(image, m, self.input_size, self.border, source), m


class TrainTransform:
    """Geometric + photometric augmentation, then crop; randomness from the given generator.

    ``__call__(image, landmarks, bbox, rng, source=None) -> (S x S x 3 uint8, (N, 2) float32, (3, 3) matrix)``
    (``source``: see :func:`warp_source`).
    Landmarks are returned in input pixels, re-indexed with ``flip_perm`` when flipped;
    points that leave the input are kept where they are (the codec masks them).
    """

    def __init__(
        self,
        input_size: int,
        flip_perm: np.ndarray | tuple[int, ...],
        crop_scale: float = 1.25,
        aug: AugmentConfig | Mapping[str, Any] | None = None,
    ):
        self.input_size = int(input_size)
        self.crop_scale = float(crop_scale)
        self.aug = AugmentConfig.from_any(aug)
        self.flip_perm = np.asarray(flip_perm, dtype=np.int64)
        if not np.array_equal(self.flip_perm[self.flip_perm], np.arange(self.flip_perm.size)):
            raise ValueError("flip_perm must be a permutation that is its own inverse (an involution)")
        a = self.aug
        color: list[A.BasicTransform] = [
            A.RandomBrightnessContrast(
                brightness_limit=(-a.brightness, a.brightness), contrast_limit=(-a.contrast, a.contrast), p=a.color_prob
            )
        ]
        if a.saturation > 0 or a.hue > 0:
            color.append(
                A.ColorJitter(
                    brightness=(1.0, 1.0),
                    contrast=(1.0, 1.0),
                    saturation=(max(0.0, 1 - a.saturation), 1 + a.saturation),
                    hue=(-a.hue, a.hue),
                    p=a.color_prob,
                )
            )
        self.photometric = A.Compose(
            [
                *color,
                A.CoarseDropout(
                    num_holes_range=(1, 1),
                    hole_height_range=a.occlusion_size,
                    hole_width_range=a.occlusion_size,
                    fill="random_uniform",
                    p=a.occlusion_prob,
                ),
                A.GaussianBlur(blur_limit=0, sigma_limit=a.blur_sigma, p=a.blur_prob),
            ]
        )

    def sample_geometry(self, rng: np.random.Generator) -> dict[str, Any]:
        """Draw flip, rotation (degrees), crop scale and shift (fraction of S) for one sample."""
        a = self.aug
        # Draw every variable unconditionally so one option's probability does not shift the others' streams.
        u_flip, u_rot, rot, sc = rng.random(), rng.random(), rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0)
        shift = rng.uniform(-1.0, 1.0, size=2) * a.shift_jitter
        return {
            "flip": bool(u_flip < a.flip_prob),
            "rotation": float(rot * a.max_rotation) if u_rot < a.rotation_prob else 0.0,
            "scale": self.crop_scale * (1.0 + sc * a.scale_jitter),
            "shift": (float(shift[0]), float(shift[1])),
        }

    def __call__(
        self,
        image: np.ndarray,
        landmarks: np.ndarray,
        bbox: np.ndarray,
        rng: np.random.Generator,
        source: np.ndarray | None = None,
    ):
        if self.flip_perm.size != len(landmarks):  # checked always, not only when a flip is drawn
            raise ValueError(
                f"flip_perm has {self.flip_perm.size} entries but the sample has {len(landmarks)} landmarks"
            )
        g = self.sample_geometry(rng)
        m = crop_matrix(bbox, self.input_size, **g)
        img = warp_source(image, m, self.input_size, self.aug.border, source)
        pts = apply_affine(landmarks, m)
        if g["flip"]:
            pts = pts[self.flip_perm]
        # albumentations draws from these generators only (it continues the sample's stream), so
        # its choices follow (seed, epoch, index) too.
        self.photometric.set_random_state(rng, random.Random(int(rng.integers(2**63))))
        img = self.photometric(image=img)["image"]
        return img, pts, m
