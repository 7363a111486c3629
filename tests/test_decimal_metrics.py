"""Compensation-head metrics: decimal-cell accuracy and offset error (hih.metrics), and their meter."""

from __future__ import annotations

import math

import pytest
import torch

from hih.codecs import HIHCodec, OffsetMapCodec, OffsetValueCodec
from hih.codecs.common import to_heatmap_coords
from hih.metrics import HeadMetricMeter, decimal_hit_map, decimal_hits, offset_error_map


def decimal_accuracy(pred, target, weight) -> torch.Tensor:
    hits, count = decimal_hits(pred, target, weight)
    return hits / count


def offset_errors(pred, target, weight, cells=None) -> tuple[torch.Tensor, torch.Tensor]:
    err, vis = offset_error_map(pred, target, weight, cells)
    return err.sum(), vis.sum().double()


class _Meter:
    """A per-landmark score accumulated by the module's meter (:class:`HeadMetricMeter`), full set only."""

    def __init__(self, score) -> None:
        self.score, self.meter = score, HeadMetricMeter()

    def update(self, *args) -> None:
        self.meter.update(*self.score(*args))

    def compute(self) -> torch.Tensor:
        return self.meter.compute()[""]


def DecimalAccuracy() -> _Meter:
    return _Meter(decimal_hit_map)


def OffsetError() -> _Meter:
    return _Meter(offset_error_map)


def _landmarks(b: int, n: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, n, 2, generator=g) * size


@pytest.mark.parametrize("d", [4, 8])
def test_decimal_accuracy_is_one_on_targets(d):
    codec = HIHCodec(64, 16, decimal_size=d)
    t = codec.encode(_landmarks(8, 98, 64))
    assert decimal_accuracy(t["decimal"], t["decimal"], t["weight"]).item() == 1.0


@pytest.mark.parametrize("d", [4, 8])
def test_decimal_accuracy_of_random_outputs_is_chance(d):
    codec = HIHCodec(64, 16, decimal_size=d)
    t = codec.encode(_landmarks(40, 98, 64, seed=1))
    pred = torch.rand(t["decimal"].shape, generator=torch.Generator().manual_seed(2))
    hits, count = decimal_hits(pred, t["decimal"], t["weight"])
    p = 1.0 / d**2
    # Each landmark hits independently with probability p: hits ~ Binomial(count, p). 5 sigma.
    sd = math.sqrt(p * (1 - p) / count.item())
    assert abs(hits.item() / count.item() - p) < 5 * sd


def test_decimal_accuracy_skips_invisible_and_counts_misses():
    codec = HIHCodec(64, 16, decimal_size=4)
    lm = _landmarks(2, 10, 64)
    lm[0, :3] = -5.0  # outside: weight 0
    t = codec.encode(lm)
    pred = t["decimal"].clone()
    # Move landmark 3 of face 0 (visible) to a different cell: exactly one miss.
    pred[0, 3] = pred[0, 3].roll(1, dims=-1).roll(1, dims=-2)
    hits, count = decimal_hits(pred, t["decimal"], t["weight"])
    assert count.item() == 17 and hits.item() == 16
    # A wrong map on an invisible landmark does not count.
    pred[0, 0] = pred[0, 0].roll(1, dims=-1)
    assert decimal_hits(pred, t["decimal"], t["weight"])[0].item() == 16


def test_decimal_accuracy_metric_accumulates_like_one_batch():
    codec = HIHCodec(64, 16, decimal_size=4)
    t = codec.encode(_landmarks(12, 20, 64, seed=3))
    pred = torch.rand(t["decimal"].shape, generator=torch.Generator().manual_seed(4))
    m = DecimalAccuracy()
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert math.isnan(m.compute().item())  # nothing seen yet: NaN, not 0
    for sl in (slice(0, 5), slice(5, 12)):
        m.update(pred[sl], t["decimal"][sl], t["weight"][sl])
    assert m.compute().item() == pytest.approx(decimal_accuracy(pred, t["decimal"], t["weight"]).item(), abs=1e-12)


def test_decimal_hits_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(B, N, d, d\)"):
        decimal_hits(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 5), torch.ones(2, 3))
    with pytest.raises(ValueError, match="weight"):
        decimal_hits(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4), torch.ones(2, 4))


def test_wov_offset_error_zero_on_targets_and_exact_on_a_shift():
    codec = OffsetValueCodec(64, 16)
    lm = _landmarks(4, 30, 64, seed=5)
    lm[1, 0] = 100.0  # outside
    t = codec.encode(lm)
    total, count = offset_errors(t["offset"], t["offset"], t["weight"])
    assert total.item() == 0.0 and count.item() == 4 * 30 - 1
    shifted = t["offset"] + torch.tensor([0.3, 0.4])  # norm 0.5 on every landmark
    m = OffsetError()
    m.update(shifted, t["offset"], t["weight"])
    assert m.compute().item() == pytest.approx(0.5, abs=1e-6)


def test_wom_offset_error_reads_the_map_at_the_target_cells():
    codec = OffsetMapCodec(64, 16)
    lm = _landmarks(3, 5, 64, seed=6)  # few landmarks: collisions unlikely but harmless
    t = codec.encode(lm)
    cells = to_heatmap_coords(lm, 64, 16).cell
    total, count = offset_errors(t["offset_map"], t["offset_map"], t["weight"], cells)
    assert total.item() == 0.0 and count.item() == 15
    # A map that is wrong only away from the landmarks' cells costs nothing ...
    pred = t["offset_map"] + (1 - t["offset_mask"]) * 0.7
    assert offset_errors(pred, t["offset_map"], t["weight"], cells)[0].item() == pytest.approx(0.0, abs=1e-9)
    # ... and one that is wrong by (0, 0.25) on them costs 0.25 cells each.
    pred = t["offset_map"] + t["offset_mask"] * torch.tensor([0.0, 0.25]).view(1, 2, 1, 1)
    m = OffsetError()
    m.update(pred, t["offset_map"], t["weight"], cells)
    assert m.compute().item() == pytest.approx(0.25, abs=1e-6)
    with pytest.raises(ValueError, match="cells"):
        offset_errors(t["offset_map"], t["offset_map"], t["weight"], cells[0])


def _ddp_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        codec = HIHCodec(64, 16, decimal_size=4)
        lm = _landmarks(10, 20, 64, seed=7)
        lm[2, :5] = -1.0  # some invisible landmarks, so the counts differ between ranks
        t = codec.encode(lm)
        pred = torch.rand(t["decimal"].shape, generator=torch.Generator().manual_seed(8))
        acc, err = DecimalAccuracy(), OffsetError()
        shard = slice(0, 3) if rank == 0 else slice(3, 10)  # unequal shards
        acc.update(pred[shard], t["decimal"][shard], t["weight"][shard])
        off = torch.rand(10, 20, 2, generator=torch.Generator().manual_seed(9))
        err.update(off[shard], torch.zeros_like(off[shard]), t["weight"][shard])
        torch.save({"acc": acc.compute(), "err": err.compute()}, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # spawns two gloo processes
def test_metrics_reduce_across_ddp_ranks(tmp_path):
    """Two gloo processes, each with part of the batch: compute() equals the single-process value."""
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    codec = HIHCodec(64, 16, decimal_size=4)
    lm = _landmarks(10, 20, 64, seed=7)
    lm[2, :5] = -1.0
    t = codec.encode(lm)
    pred = torch.rand(t["decimal"].shape, generator=torch.Generator().manual_seed(8))
    off = torch.rand(10, 20, 2, generator=torch.Generator().manual_seed(9))
    want_acc = decimal_accuracy(pred, t["decimal"], t["weight"]).item()
    total, count = offset_errors(off, torch.zeros_like(off), t["weight"])
    for rank in range(2):
        r = torch.load(tmp_path / f"rank{rank}.pt")
        assert r["acc"].item() == pytest.approx(want_acc, abs=1e-12)
        assert r["err"].item() == pytest.approx((total / count).item(), abs=1e-12)
