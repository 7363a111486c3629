"""The SLURM path against a real cluster (``scripts/local_slurm.sh up``): a sweep through sbatch, DDP ranks
started by srun, preemption with requeue, a cancelled job (two nodes by torchrun: tests/test_torchrun.py).

Skipped, with the reason, where ``sinfo`` does not answer; where ``HIH_REQUIRE_SLURM=1`` (``.ci/run``
starts the cluster and sets it) a missing cluster fails instead. Every submitted job carries a job name
unique to its test and is cancelled (``scancel --name``) when the test ends, passed or not.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from cli import BIN, cli_env, run_cli
from tiny import DDP, QUIET
from tiny import TINY_SUBPROCESS as TINY

# What the one-node CPU cluster can grant: the launcher's GPU-node defaults would be refused up front.
ON_THE_NODE = ["hydra/launcher=slurm", "hydra.launcher.mem_gb=2", "hydra.launcher.cpus_per_task=1"]

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _sinfo() -> str | None:
    """Why no cluster answers, or None when one does."""
    if shutil.which("sinfo") is None:
        return "no SLURM here (sinfo not found): scripts/local_slurm.sh up starts a local one"
    try:
        proc = subprocess.run(["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 20 s"
    if proc.returncode != 0:
        return f"no SLURM cluster answers ({proc.stderr.strip()[:200]}): scripts/local_slurm.sh up starts one"
    if not any(s.strip().rstrip("*~#") in ("idle", "mixed", "allocated") for s in proc.stdout.split()):
        return f"no SLURM node is up (sinfo: {proc.stdout.split()})"
    return None


@pytest.fixture(scope="module")
def cluster() -> None:
    why = _sinfo()
    if why is not None:
        if os.environ.get("HIH_REQUIRE_SLURM") == "1":
            pytest.fail(f"HIH_REQUIRE_SLURM=1 but {why}")
        pytest.skip(why)


@pytest.fixture
def job_name(cluster) -> str:
    """A job name for this test's jobs; they are cancelled when the test ends."""
    name = f"hih-test-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["scancel", f"--name={name}"], capture_output=True, timeout=60)


def _env(tmp_path: Path) -> dict[str, str]:
    # One thread in every process (the job inherits it through sbatch): the same float reductions.
    return cli_env(tmp_path / "data")


def _train(tmp_path: Path, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    return run_cli("hih-train", args, env=_env(tmp_path), cwd=tmp_path, timeout=timeout, check=check)


def _logs(sweep: Path) -> str:
    """The jobs' own logs (SLURM's stdout and stderr files), for a failure message."""
    return "\n".join(f"== {p}\n{p.read_text()[-3000:]}" for p in sorted(sweep.glob(".submitit/*/*_log.*")))


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def _sacct_settled(job: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """sacct's answer once no task of ``job`` is still pending or running. The sweep returns as soon as each
    job's result file is written; the job itself (the interpreter's exit, SLURM's epilogue, the record in
    slurmdbd) ends a moment later, so an immediate sacct can still say RUNNING (seen in CI)."""
    args = ["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", job]
    unsettled = ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "REQUEUED", "RESIZING", "SUSPENDED")
    deadline = time.monotonic() + timeout
    while True:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=30)
        states = [line.split("|")[-1] for line in proc.stdout.split()]
        if proc.returncode != 0 or not any(s in unsettled for s in states) or time.monotonic() > deadline:
            return proc
        time.sleep(0.5)


def test_sweep_through_sbatch_then_report(tmp_path, job_name):
    """Two grid points as one job array on a fresh data folder (both jobs generate the synthetic set at
    once), both run to the end, hih-report gives both rows."""
    sweep = tmp_path / "sweep"
    _train(
        tmp_path,
        "-m",
        "sweep=heads",
        'hydra.sweeper.params.model="baseline,hih_l"',
        "trainer.accelerator=cpu",
        "data.datamodule.n_test=12",
        "trainer.max_epochs=1",
        "plot_samples=1",
        *TINY,
        *QUIET,
        *ON_THE_NODE,
        "hydra.launcher.timeout_min=10",
        f"hydra.launcher.name={job_name}",
        f"hydra.sweep.dir={sweep}",
    )
    arrays = {p.name.split("_")[0] for p in (sweep / ".submitit").iterdir() if re.fullmatch(r"\d+_\d+", p.name)}
    assert len(arrays) == 1, f"expected one job array, got {sorted(arrays)}"
    for num in (0, 1):
        assert (sweep / str(num) / "metrics.json").is_file(), _logs(sweep)
        assert json.loads((sweep / str(num) / "status.json").read_text())["status"] == "completed"
    (array,) = arrays
    sacct = _sacct_settled(array)
    if sacct.returncode == 0:  # a cluster with accounting: both jobs recorded as completed
        assert sorted(sacct.stdout.split()) == [f"{array}_0|COMPLETED", f"{array}_1|COMPLETED"], sacct.stdout
    else:
        assert "accounting storage is disabled" in sacct.stderr, sacct.stderr
    report = run_cli("hih-report", [f"multirun_dir={sweep}"], env=_env(tmp_path), cwd=tmp_path, timeout=120)
    markdown = (sweep / "report" / "report.md").read_text()
    assert "| model=baseline | baseline | completed |" in markdown, report.stdout[-2000:]
    assert "| model=hih_l | hih_l | completed |" in markdown


def test_ddp_under_srun_equals_one_process(tmp_path, job_name):
    """One job, 2 tasks: srun starts both ranks (Lightning's SLURM environment, nothing spawned by
    Lightning); rank 0 alone writes the run folder; test metrics equal a 1-process evaluation exactly."""
    sweep = tmp_path / "sweep"
    _train(
        tmp_path,
        "-m",
        "trainer=ddp_cpu",
        "trainer.max_epochs=1",
        "plot_samples=2",
        *TINY,
        *QUIET,
        *DDP,
        *ON_THE_NODE,
        "hydra.launcher.timeout_min=10",
        f"hydra.launcher.name={job_name}",
        f"hydra.sweep.dir={sweep}",
    )
    run = sweep / "0"
    assert (run / "metrics.json").is_file(), _logs(sweep)
    (job,) = [p for p in (sweep / ".submitit").iterdir() if re.fullmatch(r"\d+", p.name)]
    outs = {p.name.split("_")[1]: p.read_text() for p in job.glob("*_log.out")}
    assert set(outs) == {"0", "1"}, sorted(outs)  # one task per rank, both started by srun
    for rank, out in outs.items():
        assert f"global_rank={rank}(2)" in out, out[-2000:]
    rank1 = outs["1"] + (job / f"{job.name}_1_log.err").read_text()
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in rank1  # rank 1 logged to its own task's files ...
    log = (run / "train.log").read_text()
    assert "GLOBAL_RANK: 0" in log and "GLOBAL_RANK: 1" not in log  # ... not into the run folder
    assert "SLURM auto-requeueing enabled" in log  # Lightning took the ranks from SLURM's environment

    single = tmp_path / "single"
    ckpt = run / "checkpoints" / "last.ckpt"
    run_cli(
        "hih-eval",
        [*TINY, *DDP, "plot_samples=0", f"ckpt_path={ckpt}", f"hydra.run.dir={single}"],
        env=_env(tmp_path),
        cwd=tmp_path,
    )
    got, want = _metrics(run), _metrics(single)
    assert {"test/nme", "test/fr_100", "test/auc_100"} <= set(want)
    assert got == want  # exactly, as the gloo test (tests/test_ddp.py)


def _squeue(name: str) -> list[tuple[str, str]]:
    proc = subprocess.run(
        ["squeue", "--noheader", f"--name={name}", "--format=%i %T"], capture_output=True, text=True, timeout=30
    )
    return [tuple(line.split()) for line in proc.stdout.splitlines() if line.strip()]


def _wait_for(predicate, timeout: float, what: str, poll: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


PREEMPT = [
    "trainer.accelerator=cpu",
    "data.datamodule.n_test=12",
    "trainer.max_epochs=4",
    "trainer.deterministic=true",
    "trainer.log_every_n_steps=1",
    "plot_samples=0",
    "callbacks.last_checkpoint.every_n_train_steps=3",
]


def test_preempted_job_requeues_and_resumes_in_its_folder(tmp_path, job_name):
    """SIGUSR1 mid-epoch, as SLURM sends it before the time limit: Lightning saves its HPC checkpoint and
    requeues the job; the requeued job resumes in the same run folder and ends with the metrics of an
    uninterrupted run; the first attempt's CSV rows are kept and the logs appended, not truncated."""
    from hih.data.synthetic import ensure_synthetic

    ensure_synthetic(tmp_path / "data" / "synthetic", n_train=24, n_test=12, seed=0, workers=1, progress=False)
    reference = subprocess.Popen(
        [str(BIN / "hih-train"), *TINY, *QUIET, *PREEMPT, f"hydra.run.dir={tmp_path / 'full'}"],
        env=_env(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    sweep = tmp_path / "sweep"
    launcher = subprocess.Popen(
        [
            str(BIN / "hih-train"),
            "-m",
            *TINY,
            *QUIET,
            *PREEMPT,
            *ON_THE_NODE,
            "hydra.launcher.timeout_min=10",
            f"hydra.launcher.name={job_name}",
            f"hydra.sweep.dir={sweep}",
        ],
        env=_env(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    run = sweep / "0"
    try:
        _wait_for(lambda: (run / "checkpoints" / "last.ckpt").exists(), 180, "the job's first checkpoint")
        (job_id, state), *_ = _squeue(job_name)
        assert state == "RUNNING"
        subprocess.run(["scancel", "--signal=USR1", job_id], check=True, timeout=30)
        hpc = _wait_for(lambda: list(run.glob("hpc_ckpt_*.ckpt")), 60, "the HPC checkpoint")
        requeued = _wait_for(lambda: [j for j, s in _squeue(job_name) if s == "PENDING"], 60, "the requeue")
        # SLURM holds a requeued batch job for 2 minutes (its begin time); start it now.
        subprocess.run(["scontrol", "update", f"JobId={requeued[0]}", "StartTime=now"], check=True, timeout=30)
        out, err = launcher.communicate(timeout=300)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 0, f"{err[-4000:]}\n{_logs(sweep)}"
    assert reference.wait(timeout=300) == 0, reference.stderr.read()[-3000:]

    import torch

    step = torch.load(hpc[0], map_location="cpu", weights_only=True)["global_step"]
    assert 0 < step < 20, f"the HPC checkpoint is at step {step}: not during the training"
    log = (run / "train.log").read_text()
    assert log.count("Seed set to") == 2, "the requeued attempt did not log into the same train.log"
    assert "Restoring states from the checkpoint path at" in log and "hpc_ckpt" in log
    (job_dir,) = [p for p in (sweep / ".submitit").iterdir() if re.fullmatch(r"\d+(_\d+)?", p.name)]
    slurm_out = next(job_dir.glob("*_0_log.out")).read_text()
    assert slurm_out.count("Starting with JobEnvironment") == 2  # SLURM's log appended on the requeue
    assert _metrics(run) == _metrics(tmp_path / "full")  # exact, as after a resume with ckpt_path=last

    # csv/metrics.csv: the rows the first attempt logged before its checkpoint are kept, as logged by
    # the uninterrupted run (wall-clock timing columns aside).
    before = [r for r in _csv_rows(run) if int(r["step"]) < step]
    assert before and Counter(before) == Counter(r for r in _csv_rows(tmp_path / "full") if int(r["step"]) < step)


class _Row(dict):
    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))


def _csv_rows(run_dir: Path) -> list[_Row]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as fh:
        rows = [_Row({k: v for k, v in r.items() if v != ""}) for r in csv.DictReader(fh)]
    return [r for r in rows if not any(k.startswith(("time/", "throughput/", "memory/")) for k in r)]


def test_cancelled_job_ends_the_wait_and_is_reported(tmp_path, job_name):
    """A job cancelled outright writes no result: the sweep's wait ends with the job's error, also where the
    cluster keeps no accounting (a stand-in sacct on the submitting process's PATH answers as such a
    cluster's does), and hih-report lists the job as cancelled, with SLURM's word."""
    sweep = tmp_path / "sweep"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sacct").write_text('#!/bin/sh\necho "Slurm accounting storage is disabled" >&2\nexit 1\n')
    (bin_dir / "sacct").chmod(0o755)
    launcher = subprocess.Popen(
        [
            str(BIN / "hih-train"),
            "-m",
            "sweep=heads",
            "hydra.sweeper.params.model=baseline",
            *TINY,
            *QUIET,
            *PREEMPT,
            "trainer.max_epochs=50",
            *ON_THE_NODE,
            "hydra.launcher.timeout_min=10",
            f"hydra.launcher.name={job_name}",
            f"hydra.sweep.dir={sweep}",
        ],
        env={**_env(tmp_path), "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: (sweep / "0" / "status.json").exists(), 180, "the job's start")
        subprocess.run(["scancel", f"--name={job_name}"], check=True, timeout=30)
        out, err = launcher.communicate(timeout=150)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode != 0
    assert "CANCELLED" in err, err[-3000:]
    run_cli("hih-report", [f"multirun_dir={sweep}"], env=_env(tmp_path), cwd=tmp_path, timeout=120)
    markdown = (sweep / "report" / "report.md").read_text()
    rows = [line for line in markdown.splitlines() if "| baseline |" in line and "CANCELLED AT" in line]
    assert rows and "| cancelled |" in rows[0], markdown
