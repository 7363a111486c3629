"""The SLURM launcher without a cluster: it composes with every trainer, asks for GPUs only on a GPU
trainer, refuses a request no node can meet (naming the override), and learns that a job ended from
the controller where the cluster keeps no accounting (stand-in sacct / scontrol on PATH)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from hih.cli.slurm_launcher import (
    GONE,
    SchedulerWatcher,
    check_request,
    controller_states,
    gpus_for_trainer,
    partition_limits,
)
from hih.config import config_dir

TRAINERS = sorted(p.stem for p in (Path(config_dir()) / "trainer").glob("*.yaml"))


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


@pytest.mark.parametrize("trainer", TRAINERS)
def test_slurm_launcher_composes_with_every_trainer(trainer):
    cfg = _compose(["hydra/launcher=slurm", f"trainer={trainer}"])
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)  # every interpolation resolves
    assert launcher["_target_"] == "hydra_plugins.hih_launcher.slurm_launcher.SlurmLauncher"
    assert launcher["nodes"] == cfg.trainer.get("num_nodes", 1)
    assert launcher["tasks_per_node"] == cfg.trainer.devices
    gpus = gpus_for_trainer(cfg.trainer)
    if cfg.trainer.accelerator == "cpu":
        assert gpus == 0
    else:
        assert gpus == cfg.trainer.devices > 0


def test_gpus_follow_the_trainer():
    assert gpus_for_trainer(OmegaConf.create({"accelerator": "cpu", "devices": 2})) == 0
    assert gpus_for_trainer(OmegaConf.create({"accelerator": "gpu", "devices": 4})) == 4
    assert gpus_for_trainer(OmegaConf.create({"accelerator": "cuda", "devices": [0, 1]})) == 2
    with pytest.raises(ValueError, match="hydra.launcher.gpus_per_node"):
        gpus_for_trainer(OmegaConf.create({"accelerator": "gpu", "devices": "auto"}))


CPU_NODE = {"nodes": 1, "cpus": 2, "mem_mb": 21694, "gpus": 0, "time_min": float("inf")}


def test_request_a_cpu_node_cannot_meet_names_the_override():
    cfg = _compose(["hydra/launcher=slurm", "trainer=ddp_cpu"])
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    params["gpus_per_node"] = gpus_for_trainer(cfg.trainer) or None
    with pytest.raises(ValueError) as err:
        check_request(params, CPU_NODE)  # the defaults: 2 tasks x 10 CPUs, 120 GB
    assert "hydra.launcher.mem_gb=21" in str(err.value) and "hydra.launcher.cpus_per_task=1" in str(err.value)
    assert "GPU" not in str(err.value)  # a CPU trainer asks for none
    check_request({**params, "mem_gb": 4, "cpus_per_task": 1}, CPU_NODE)  # fits

    gpu = {**params, "mem_gb": 4, "cpus_per_task": 1, "gpus_per_node": 2}
    with pytest.raises(ValueError, match="trainer.accelerator=cpu"):
        check_request(gpu, CPU_NODE)
    with pytest.raises(ValueError, match="trainer.num_nodes"):
        check_request({**params, "mem_gb": 4, "cpus_per_task": 1, "nodes": 2}, CPU_NODE)
    with pytest.raises(ValueError, match="hydra.launcher.timeout_min=60"):
        check_request({**params, "mem_gb": 4, "cpus_per_task": 1}, {**CPU_NODE, "time_min": 60})


def _tools(tmp_path: Path, monkeypatch, **scripts: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in scripts.items():
        tool = bin_dir / name
        tool.write_text("#!/bin/sh\n" + body)
        tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


def test_partition_limits_from_sinfo(tmp_path, monkeypatch):
    _tools(
        tmp_path,
        monkeypatch,
        sinfo='echo "cpu*|3|64|256000|(null)|2-00:00:00"\necho "gpu|2|32|512000+|gpu:a100:4(S:0-1)|1:30:00"\n',
    )
    assert partition_limits(None) == {"nodes": 3, "cpus": 64, "mem_mb": 256000, "gpus": 0, "time_min": 2880}
    _tools(tmp_path, monkeypatch, sinfo='echo "gpu|2|32|512000+|gpu:a100:4(S:0-1)|1:30:00"\n')
    assert partition_limits("gpu") == {"nodes": 2, "cpus": 32, "mem_mb": 512000, "gpus": 4, "time_min": 90}
    _tools(tmp_path, monkeypatch, sinfo="echo 'sinfo: error: no controller' >&2; exit 1\n")
    assert partition_limits(None) is None  # no cluster answers: nothing to check against


NO_ACCOUNTING = 'echo "Slurm accounting storage is disabled" >&2\nexit 1\n'


def test_watcher_asks_the_controller_when_accounting_is_disabled(tmp_path, monkeypatch):
    scontrol = """case "$4" in
  41) echo "JobId=42 ArrayJobId=41 ArrayTaskId=0 JobName=train JobState=FAILED Reason=NonZeroExitCode"
      echo "JobId=41 ArrayJobId=41 ArrayTaskId=1-2%32 JobName=train JobState=PENDING Reason=None" ;;
  50) echo "JobId=50 JobName=train JobState=RUNNING Reason=None" ;;
  *) echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1 ;;
esac
"""
    _tools(tmp_path, monkeypatch, sacct=NO_ACCOUNTING, scontrol=scontrol)
    watcher = SchedulerWatcher(delay_s=60)
    for job in ("41_0", "41_1", "41_2", "50", "7_3"):
        watcher.register_job(job)
    watcher.update()
    assert watcher.get_state("41_0", mode="cache") == "FAILED" and watcher.is_done("41_0", mode="cache")
    assert watcher.get_state("41_2", mode="cache") == "PENDING" and not watcher.is_done("41_2", mode="cache")
    assert not watcher.is_done("50", mode="cache")
    assert watcher.get_state("7_3", mode="cache") == GONE and watcher.is_done("7_3", mode="cache")
    assert watcher._finished == {"41_0", "7_3"}


def test_controller_not_answering_keeps_jobs_running(tmp_path, monkeypatch):
    _tools(
        tmp_path, monkeypatch, sacct=NO_ACCOUNTING, scontrol="echo 'Unable to contact slurm controller' >&2\nexit 1\n"
    )
    assert controller_states({"5"}, {"5_0"}) == {}
    watcher = SchedulerWatcher(delay_s=60)
    watcher.register_job("5_0")
    watcher.update()
    assert not watcher.is_done("5_0", mode="cache")


def test_a_failed_job_without_result_ends_the_wait(tmp_path, monkeypatch):
    """submitit's Job.done() on a job that died without writing its result: with the watcher, it ends."""
    import submitit
    from submitit.slurm.slurm import SlurmJob

    _tools(
        tmp_path,
        monkeypatch,
        sacct=NO_ACCOUNTING,
        scontrol='echo "JobId=9 JobName=train JobState=CANCELLED Reason=None"\n',
    )
    from submitit.slurm.slurm import SlurmInfoWatcher

    (tmp_path / "submitit").mkdir()
    monkeypatch.setattr(SlurmJob, "watcher", SlurmInfoWatcher(delay_s=60))
    assert not SlurmJob(folder=tmp_path / "submitit", job_id="9").done(force_check=True)  # submitit alone: waits
    monkeypatch.setattr(SlurmJob, "watcher", SchedulerWatcher(delay_s=60))
    job = SlurmJob(folder=tmp_path / "submitit", job_id="9")
    assert job.done(force_check=True)
    job._results_timeout_s = 0
    with pytest.raises(submitit.core.utils.UncompletedJobError, match="CANCELLED"):
        job.result()


def test_scheduler_log_tells_a_cancelled_job_from_a_requeued_one(tmp_path):
    from hih.analysis.scheduler_log import ended_by_scheduler

    log = tmp_path / "16_0_log.err"
    assert ended_by_scheduler(log) is None  # no file
    log.write_text("submitit WARNING - Bypassing signal SIGTERM\n")
    assert ended_by_scheduler(log) is None
    log.write_text("slurmstepd-vm: error: *** JOB 16 ON vm CANCELLED AT 2026-12-07T21:50:17 DUE TO JOB REQUEUE ***\n")
    assert ended_by_scheduler(log) is None  # requeued: it runs again
    with open(log, "a") as fh:
        fh.write("slurmstepd-vm: error: *** JOB 16 ON vm CANCELLED AT 2026-12-07T21:56:25 DUE TO TIME LIMIT ***\n")
    assert ended_by_scheduler(log) == "CANCELLED AT 2026-12-07T21:56:25 DUE TO TIME LIMIT"
    log.write_text("slurmstepd-vm: error: *** STEP 16.0 ON vm CANCELLED AT 2026-12-07T21:56:25 ***\n")
    assert ended_by_scheduler(log) == "CANCELLED AT 2026-12-07T21:56:25"
