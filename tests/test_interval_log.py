"""Following a run from its log file: interval lines (stdout when it is a file, always train.log), the
timing metrics in the CSV logger, a data share that tracks a deliberately slow loader, and a terminal
that keeps the bar alone."""

from __future__ import annotations

import csv
import logging
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, Dataset

from hih.callbacks import IntervalLog, StepClock
from hih.callbacks.interval_log import interval_steps
from hih.progress import emit, format_duration, track
from tiny import tiny

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
# One interval line:
# "Epoch 1/2  batch 1/3  step 1/6  lr ...  eta 0:00:01  step 0.25 s  data 0.03 s (12% of step)  30.9 img/s ..."
LINE = re.compile(
    r"Epoch (\d+)/\d+ +batch +\d+/\d+ +step +(\d+)/(\d+) .*eta (\d+:\d\d:\d\d) +step ([\d.]+) s +"
    r"data ([\d.]+) s \((\d+)% of step\) +([\d.]+) img/s +mem \d+ MiB +loss [\d.e+-]+"
)
VAL = re.compile(r"Epoch (\d+) validation +val/nme [\d.]+ +best [\d.]+ \(epoch (\d+)\)")
TIMING_COLUMNS = ["time/step_s", "time/data_s", "time/data_share", "throughput/img_s", "memory/peak_mib"]


# ---------------------------------------------------------------------------------------- helpers
def test_format_duration():
    assert format_duration(0) == "0:00:00"
    assert format_duration(3725.4) == "1:02:05"
    assert format_duration(float("nan")) == "?"


def test_slow_steps_shorten_the_interval_to_a_divisor():
    assert interval_steps(10, step_s=0.5, max_interval_s=60) == 10  # fast steps: log_every_n_steps
    assert interval_steps(10, step_s=8.5, max_interval_s=60) == 5  # 7 steps fit in a minute: 5 divides 10
    assert interval_steps(50, step_s=2.0, max_interval_s=60) == 25
    assert interval_steps(10, step_s=100.0, max_interval_s=60) == 1  # a step longer than the bound


def test_emit_reaches_the_log_file_and_skips_the_console_when_told(tmp_path, capsys):
    logger = logging.getLogger("hih.test_emit")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    file_handler = logging.FileHandler(tmp_path / "run.log")
    console = logging.StreamHandler(sys.stdout)
    logger.addHandler(file_handler)
    logger.addHandler(console)
    try:
        emit("for the file only", console=False, logger=logger)
        emit("for both", console=True, logger=logger)
    finally:
        logger.removeHandler(file_handler)
        logger.removeHandler(console)
        file_handler.close()
    assert (tmp_path / "run.log").read_text().splitlines() == ["for the file only", "for both"]
    assert capsys.readouterr().out.splitlines() == ["for both"]


def test_track_writes_lines_with_eta_when_stdout_is_not_a_terminal(capsys):
    items = list(track(range(20), "predict", unit="images", every_n=5))
    assert items == list(range(20))
    lines = capsys.readouterr().out.splitlines()  # pytest's captured stdout is not a terminal
    counts = [int(re.match(r"predict: (\d+)/20 images", line).group(1)) for line in lines]
    assert counts == [5, 10, 15, 20, 20]
    assert all("eta" in line for line in lines[:-1]) and "done in" in lines[-1]


def test_track_counts_sizes_per_item(capsys):
    list(track([[1, 2, 3], [4, 5]], "batches", total=5, unit="images", sizes=[3, 2], every_n=3))
    assert capsys.readouterr().out.splitlines()[0].startswith("batches: 3/5 images (60%)")


def test_step_clock_times_the_fetch_and_excludes_pauses():
    clock = StepClock()
    clock.start()

    def slow():
        for i in range(3):
            time.sleep(0.02)
            yield i

    for _ in clock.fetching(slow()):
        time.sleep(0.01)  # the "step"
        clock.step_end(4)
    clock.pause()
    time.sleep(0.3)  # validation: neither data nor step time
    clock.resume()
    t = clock.read()
    assert (t.steps, t.samples) == (3, 12)
    # Sleeps last at least as long as asked; the upper bounds leave room for a loaded machine.
    assert 0.06 <= t.data_s < 0.06 + 0.1
    assert 0.09 <= t.wall_s < 0.09 + 0.2  # without the pause excluded, at least 0.39
    assert 0.3 < t.data_share < 0.9


# ---------------------------------------------------------------------------------- a slow loader
class SleepyFaces(Dataset):
    """``__getitem__`` sleeps ``delay`` seconds: the loader wait per batch is batch_size x delay."""

    def __init__(self, n: int, delay: float):
        self.n, self.delay = n, delay

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        time.sleep(self.delay)
        return {"image": torch.zeros(3), "target": torch.zeros(1)}


class SleepyModel(L.LightningModule):
    """A step of known length: ``step_s`` of sleep around a linear layer."""

    def __init__(self, step_s: float):
        super().__init__()
        self.step_s = step_s
        self.layer = torch.nn.Linear(3, 1)

    def training_step(self, batch, batch_idx):
        time.sleep(self.step_s)
        return torch.nn.functional.mse_loss(self.layer(batch["image"]), batch["target"])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit_timing(tmp_path: Path, delay: float, batch: int, step_s: float, steps: int) -> dict[str, float]:
    """Median logged timing metrics of a fit's steps (the warm-up step left out; the median resists
    a step slowed by other load on the machine)."""
    logger = CSVLogger(tmp_path, name=f"delay_{delay}")
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=logger,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[IntervalLog()],
    )
    loader = DataLoader(SleepyFaces(batch * steps, delay), batch_size=batch, num_workers=0)
    trainer.fit(SleepyModel(step_s), train_dataloaders=loader)
    with open(Path(logger.log_dir) / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("time/data_s")]
    assert len(rows) == steps, rows
    rows = rows[1:]
    return {k: statistics.median(float(r[k]) for r in rows) for k in TIMING_COLUMNS}


@pytest.mark.slow  # two Lightning fits of about a second each
def test_data_time_and_share_follow_a_slow_loader(tmp_path):
    batch, delay, step_s = 4, 0.025, 0.03  # 100 ms of loading per batch against a 30 ms step
    fast = _fit_timing(tmp_path, 0.0, batch, step_s, steps=6)
    slow = _fit_timing(tmp_path, delay, batch, step_s, steps=6)
    rise = slow["time/data_s"] - fast["time/data_s"]
    assert abs(rise - batch * delay) <= 0.025, (fast, slow)
    assert fast["time/data_share"] < 0.3 and slow["time/data_share"] > 0.5, (fast, slow)
    # The step time holds the wait: step ~ data + the 20 ms step.
    assert slow["time/step_s"] >= slow["time/data_s"] + step_s
    assert slow["throughput/img_s"] < fast["throughput/img_s"]


# ----------------------------------------------------------------------------- hih-train, for real
def _train(tmp_path: Path, data_dir: Path, name: str, *extra: str, **env: str) -> tuple[str, Path, Path]:
    """hih-train (tiny, 2 epochs) with stdout and stderr in a file: (stdout text, run dir, copy of stdout
    taken when the fit ended)."""
    run, out, at_fit_end = tmp_path / name, tmp_path / f"{name}.out", tmp_path / f"{name}.at_fit_end"
    cmd = [
        sys.executable,
        "-m",
        "hih.cli.train",
        *tiny(data_dir),
        "trainer.max_epochs=2",
        f"hydra.run.dir={run}",
        "+callbacks.probe._target_=stdout_probe.CopyAtTrainEnd",
        f"+callbacks.probe.src={out}",
        f"+callbacks.probe.dest={at_fit_end}",
        *extra,
    ]
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HYDRA_FULL_ERROR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")
    }
    full_env = {
        **base,
        "PYTHONPATH": f"{SRC}{os.pathsep}{TESTS}",
        "WANDB_MODE": "offline",
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
        **env,
    }
    with open(out, "w") as stdout:
        proc = subprocess.run(
            cmd, cwd=tmp_path, env=full_env, stdout=stdout, stderr=subprocess.STDOUT, timeout=300, check=False
        )
    text = out.read_text()
    assert proc.returncode == 0, text[-3000:]
    return text, run, at_fit_end


@pytest.mark.slow  # a hih-train subprocess
def test_a_log_file_follows_the_run(tmp_path, data_dir):
    text, run, at_fit_end = _train(tmp_path, data_dir, "file")
    lines = [m for m in map(LINE.search, text.splitlines()) if m]
    steps = [int(m.group(2)) for m in lines]
    total = int(lines[-1].group(3))
    assert total >= 4 and steps == list(range(1, total + 1)), text  # 2 epochs, a line every step
    assert all(int(m.group(3)) == total for m in lines)
    for m in lines:
        step_s, data_s, share, img_s = float(m.group(5)), float(m.group(6)), int(m.group(7)), float(m.group(8))
        assert 0 < data_s < step_s and 0 <= share <= 100 and img_s > 0
        assert abs(share - 100 * data_s / step_s) <= 2  # the share printed is data / step (rounding)
    assert [int(m.group(1)) for m in map(VAL.search, text.splitlines()) if m] == [1, 2]
    # Written while the run went on: the file already held every interval line when the fit ended,
    # before the test stage printed its table.
    early = at_fit_end.read_text()
    assert [int(m.group(2)) for m in map(LINE.search, early.splitlines()) if m] == steps
    assert "hih_l on synthetic" not in early and "hih_l on synthetic" in text
    # The run dir's train.log holds the same lines.
    log = (run / "train.log").read_text()
    assert [m.group(0) for m in map(LINE.search, log.splitlines()) if m] == [m.group(0) for m in lines]
    assert len([m for m in map(VAL.search, log.splitlines()) if m]) == 2
    # csv/metrics.csv: the timing columns, one row per interval.
    with open(run / "csv" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    timed = [r for r in rows if r.get("time/step_s")]
    assert len(timed) == total and all(
        float(r["time/data_share"]) < 1 and float(r["throughput/img_s"]) > 0 for r in timed
    )
    assert all(c in rows[0] for c in TIMING_COLUMNS)


@pytest.mark.slow  # a hih-train subprocess
def test_a_terminal_keeps_the_bar_without_duplicate_lines(tmp_path, data_dir):
    text, run, _ = _train(
        tmp_path, data_dir, "tty", "test=false", FORCE_COLOR="1", TERM="xterm-256color", COLUMNS="120"
    )
    assert "━" in text and "\x1b[" in text  # Rich's bar, drawn with terminal control codes
    assert not LINE.search(text) and not VAL.search(text), text  # the bar alone on the console
    log = (run / "train.log").read_text().splitlines()
    assert len([m for m in map(LINE.search, log) if m]) >= 4 and len([m for m in map(VAL.search, log) if m]) == 2
