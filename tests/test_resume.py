"""Exact resume: a run SIGKILLed mid-epoch and resumed with ckpt_path=last ends with the same test
metrics and the same csv/metrics.csv rows as the uninterrupted run; plus the resumable loader, the
resumable CSV writer and the run-dir guard on their own."""

from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from cli import cli_env
from hih.data.dataset import EpochSampler, ResumableDataLoader
from hih.rundir import RunDirExistsError, check_run_dir

TRAIN = [sys.executable, "-m", "hih.cli.train"]
STEPS_PER_EPOCH = 5  # 24 synthetic faces, 1 held out for validation, batch 4, drop_last
TINY = [
    "data.datamodule.n_train=24",
    "data.datamodule.n_test=12",
    "debug=tiny",
    "data.datamodule.batch_size=4",
    "data.datamodule.num_workers=0",
    "trainer.max_epochs=3",
    "trainer.deterministic=true",
    "trainer.log_every_n_steps=1",
    "callbacks.last_checkpoint.every_n_train_steps=3",
    "~callbacks.progress_bar",
    "+trainer.enable_progress_bar=false",
    "plot_samples=0",
]


def _env(data_dir: Path) -> dict[str, str]:
    # One thread in every process: float reductions then run in the same order.
    return cli_env(data_dir)


def _train(run_dir: Path, data_dir: Path, *extra: str) -> subprocess.Popen:
    log = open(run_dir.with_suffix(".log"), "ab")
    return subprocess.Popen(
        [*TRAIN, *TINY, f"hydra.run.dir={run_dir}", *extra], env=_env(data_dir), stdout=log, stderr=subprocess.STDOUT
    )


def _wait(proc: subprocess.Popen, run_dir: Path, timeout: float = 120) -> None:
    rc = proc.wait(timeout=timeout)
    assert rc == 0, run_dir.with_suffix(".log").read_text()[-3000:]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path):
    from hih.data.synthetic import ensure_synthetic

    data = tmp_path / "data"
    ensure_synthetic(data / "synthetic", n_train=24, n_test=12, seed=0, workers=1, progress=False)
    full, killed = tmp_path / "full", tmp_path / "killed"

    reference = _train(full, data)  # runs alongside the one we kill
    victim = _train(killed, data)
    last = killed / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not last.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert victim.poll() is None, "the run finished before a mid-epoch checkpoint could be interrupted"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (killed / "metrics.json").exists()
    before_kill = _csv_rows(killed)

    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    step = ckpt["global_step"]
    assert step % STEPS_PER_EPOCH != 0, f"last.ckpt is at an epoch boundary (step {step}); expected mid-epoch"
    assert ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["batches"] == step % STEPS_PER_EPOCH

    resumed = _train(killed, data, "ckpt_path=last")
    _wait(resumed, killed)
    _wait(reference, full)
    assert "Restoring states from the checkpoint path at" in killed.with_suffix(".log").read_text()

    got = json.loads((killed / "metrics.json").read_text())
    want = json.loads((full / "metrics.json").read_text())
    assert got == want  # exact: same batches, same augmentation, same optimizer / scheduler state

    # csv/metrics.csv: the killed run's rows below the checkpoint's step survive the resume, the rows
    # the resumed run logs again are not doubled, and the result is the uninterrupted run's CSV, but:
    # - the checkpointing batch's own row (step - 1) when the kill came between the checkpoint write
    #   and that row (Lightning logs a batch after its on_train_batch_end, where last.ckpt is saved);
    # - the epoch means of the interrupted epoch, which Lightning does not checkpoint: after a
    #   mid-epoch resume they average only the batches run after it.
    rows, reference = _csv_rows(killed), _csv_rows(full)
    kept = [r for r in before_kill if r["step"] < step]
    assert kept and Counter(kept) <= Counter(rows), "rows logged before the kill are missing after the resume"
    assert any(r["step"] >= step for r in rows)
    unlogged = [r for r in reference if r["step"] == step - 1 and r not in before_kill]
    assert len(unlogged) <= 1
    want = Counter(reference) - Counter(unlogged)
    assert Counter(map(_shape, rows)) == Counter(map(_shape, want.elements())), (
        "the resumed run's CSV does not hold each logged row once"
    )
    interrupted = str(step // STEPS_PER_EPOCH)
    epoch_mean = lambda r: r.get("epoch") == interrupted and any(k.endswith("_epoch") for k in r)  # noqa: E731
    assert Counter(r for r in rows if not epoch_mean(r)) == Counter(r for r in want.elements() if not epoch_mean(r))


def _shape(row: dict) -> tuple:
    return row["step"], frozenset(row)


class _Row(dict):
    """A CSV row without its empty cells, hashable (for Counter); ``step`` as an int."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))


def _csv_rows(run_dir: Path) -> list[_Row]:
    path = run_dir / "csv" / "metrics.csv"
    snapshot = run_dir.parent / f"{run_dir.name}-metrics.csv"
    shutil.copy(path, snapshot)  # a stable copy
    with open(snapshot, newline="") as fh:
        rows = [_Row({k: v for k, v in r.items() if v != ""}) for r in csv.DictReader(fh)]
    for r in rows:
        r["step"] = int(r["step"])
    # Timing rows (hih.callbacks.IntervalLog: time/*, throughput/*, memory/*) are wall-clock
    # measurements, and the resumed run starts its intervals afresh: not part of the exact comparison.
    return [r for r in rows if not any(k.startswith(("time/", "throughput/", "memory/")) for k in r)]


def test_resumed_csv_keeps_rows_below_the_resume_step(tmp_path):
    from hih.loggers import CSVLogger

    first = CSVLogger(save_dir=tmp_path, name="csv", version="", flush_logs_every_n_steps=1)
    for s in range(6):
        first.log_metrics({"loss": float(s)}, step=s)
    first.log_metrics({"val/nme": 1.0}, step=4)
    # killed here; the checkpoint was at step 3: the resumed process logs from step 3 again
    second = CSVLogger(save_dir=tmp_path, name="csv", version="", flush_logs_every_n_steps=1)
    for s in range(3, 7):
        second.log_metrics({"loss": 10.0 + s}, step=s)
    second.log_metrics({"val/nme": 2.0}, step=4)
    second.save()
    rows = _csv_rows(tmp_path)
    assert [(r["step"], r.get("loss"), r.get("val/nme")) for r in rows] == [
        (0, "0.0", None),
        (1, "1.0", None),
        (2, "2.0", None),
        (3, "13.0", None),
        (4, "14.0", None),
        (5, "15.0", None),
        (6, "16.0", None),
        (4, None, "2.0"),
    ]


def test_wandb_run_id_follows_the_run_dir(tmp_path):
    from hih.loggers import WandbLogger

    a = WandbLogger(save_dir=str(tmp_path / "run"), offline=True)
    b = WandbLogger(save_dir=str(tmp_path / "run" / "x" / ".."), offline=True)
    c = WandbLogger(save_dir=str(tmp_path / "other"), offline=True)
    assert a._wandb_init["id"] == b._wandb_init["id"] != c._wandb_init["id"]
    assert a._wandb_init["resume"] == "allow" and "anonymous" not in a._wandb_init


class Keys(torch.utils.data.Dataset):
    """Returns the sampler's key itself (epoch * n + index)."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key: int) -> int:
        return key


def test_resumable_loader_skips_consumed_batches_of_the_same_epoch_only():
    data = Keys(20)
    sampler = EpochSampler(data, shuffle=True, seed=3, num_replicas=1, rank=0)
    loader = ResumableDataLoader(data, batch_size=4, sampler=sampler)
    sampler.set_epoch(2)
    full = [b.tolist() for b in loader]

    it = iter(loader)
    seen = [next(it).tolist(), next(it).tolist()]
    state = loader.state_dict()
    assert state == {"epoch": 2, "batches": 2}

    fresh_sampler = EpochSampler(data, shuffle=True, seed=3, num_replicas=1, rank=0)
    fresh = ResumableDataLoader(data, batch_size=4, sampler=fresh_sampler)
    fresh.load_state_dict(state)
    rest = [b.tolist() for b in fresh]
    assert seen + rest == full
    assert fresh.state_dict() == {"epoch": 2, "batches": 5}

    # A stale position (another epoch) never skips data.
    other = EpochSampler(data, shuffle=True, seed=3, num_replicas=1, rank=0)
    other_loader = ResumableDataLoader(data, batch_size=4, sampler=other)
    other_loader.load_state_dict(state)
    other.set_epoch(3)
    assert len(list(other_loader)) == 5


def test_resumable_loader_iter_is_lazy_about_the_epoch():
    # Lightning calls iter() before set_epoch when a fit starts: the epoch in force at the first
    # next() must decide the order.
    data = Keys(12)
    sampler = EpochSampler(data, shuffle=True, seed=0, num_replicas=1, rank=0)
    loader = ResumableDataLoader(data, batch_size=3, sampler=sampler)
    it = iter(loader)
    sampler.set_epoch(4)
    first = next(it)
    assert int(first.min()) >= 4 * len(data)  # keys encode the epoch


def test_run_dir_guard(tmp_path):
    check_run_dir(tmp_path)  # empty: fine
    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(RunDirExistsError, match="already holds the results of an earlier run"):
        check_run_dir(tmp_path)
    check_run_dir(tmp_path, resuming=True)
