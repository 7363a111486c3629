"""Sweeps: the sweep / launcher / sweeper configs compose, a local multirun with a failing job is
reported row by row by hih-report, and the SLURM launcher writes the expected sbatch script."""

from __future__ import annotations

import csv
import os
import stat
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from cli import cli_env, run_cli
from hih.config import config_dir

TINY = [
    "data.input_size=64",
    "data.heatmap_size=16",
    "model.channels=16",
    "data.datamodule.n_train=24",
    "data.datamodule.n_test=12",
    "data.datamodule.batch_size=8",
    "data.datamodule.num_workers=0",
    "trainer.max_epochs=1",
    "plot_samples=1",
    "logger=csv",
]


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


@pytest.mark.parametrize(
    "sweep, params",
    [
        ("heads", {"model": "baseline,wsm,wov,wom,hih_c,hih_t"}),
        ("decimal", {"model.decimal_size": "4,8,16"}),
        ("stacks", {"model": "hih_c,hih_t", "model.stacks": "1,2"}),
        ("integer", {"model": "baseline,hih_c,hih_t", "model.stacks": "1,2"}),
        ("benchmark", {"model": "baseline,wov,wom,hih_c,hih_t,hih_l", "labels": "ours,authors"}),
        ("seeds", {}),
    ],
)
def test_sweep_configs_compose(sweep, params):
    for experiment in (
        ("quickstart",) if sweep == "benchmark" else ("quickstart", "paper/wflw")
    ):  # the benchmark: synthetic faces
        cfg = _compose([f"experiment={experiment}", f"sweep={sweep}"])
        assert dict(cfg.hydra.sweeper.params or {}) == params
        assert cfg.sweep_name == sweep
        assert cfg.hydra.callbacks.job_status._target_ == "hih.cli.hydra_callbacks.SweepCallback"
        assert cfg.data.name == ("synthetic" if experiment == "quickstart" else "wflw")
        assert f"sweep:{sweep}" in list(cfg.tags)
        assert str(OmegaConf.select(cfg, "logger.csv._target_")).endswith("CSVLogger")


def test_every_swept_value_composes():
    # Each job of each sweep must compose (a typo in a model name would only fail on the cluster).
    for sweep in ("heads", "stacks", "integer", "decimal", "benchmark"):
        params = dict(_compose([f"sweep={sweep}"]).hydra.sweeper.params)
        keys = list(params)
        first = {k: params[k].split(",") for k in keys}
        for k in keys:
            for v in first[k]:
                cfg = _compose([f"sweep={sweep}", f"{k}={v}"])
                assert cfg.model.name in {"baseline", "wsm", "wov", "wom", "hih_c", "hih_t", "hih_l"}


def test_sweep_seeds_join_the_basic_grid_unless_the_command_line_sets_them():
    from hih.cli.hydra_callbacks import add_seeds, point_by_swept_keys

    cfg = _compose(
        ["sweep=seeds", "sweep.seeds=[4,5]", "+hydra.sweeper.params.model='baseline,hih_l'", "trainer.max_epochs=2"]
    )
    assert add_seeds(cfg) == "4,5" and cfg.hydra.sweeper.params.seed == "4,5"
    assert list(cfg.hydra.sweeper.params) == ["seed", "model"]  # seed first: slowest, the grid once per seed
    # The W&B group's grid point: the swept keys only (model), not the seed nor the common overrides.
    excluded = point_by_swept_keys(cfg)
    assert {"seed", "trainer.max_epochs", "sweep", "sweep.seeds"} <= set(excluded) and "model" not in excluded
    assert cfg.hydra.overrides.hydra[-1].startswith("hydra.job.config.override_dirname.exclude_keys=[")
    assert add_seeds(_compose(["sweep=seeds", "seed=7"])) is None  # the command line wins
    assert add_seeds(_compose(["sweep=heads"])) is None  # no seeds: the config's one seed
    with pytest.raises(ValueError, match="list of integers"):
        add_seeds(_compose(["sweep=seeds", "sweep.seeds=[a,b]"]))
    with pytest.raises(ValueError, match="basic sweeper"):
        add_seeds(_compose(["sweep=seeds", "hydra/sweeper=hpo"]))


def test_slurm_launcher_follows_the_trainer():
    cfg = _compose(
        ["hydra/launcher=slurm", "trainer=ddp_multinode", "trainer.devices=8", "hydra.launcher.partition=gpu"]
    )
    from hih.cli.slurm_launcher import gpus_for_trainer

    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, gpus_for_trainer(cfg.trainer)) == (2, 8, 8)
    assert launcher.partition == "gpu"
    assert launcher.additional_parameters.signal == "USR1@300"
    assert launcher.additional_parameters.requeue is True
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.sync_batchnorm is True and cfg.trainer.num_nodes == 2


def test_local_launcher_and_optuna_sweeper_compose():
    cfg = _compose(["hydra/launcher=local", "hydra/sweeper=hpo"])
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher") and cfg.hydra.launcher.n_jobs == 2
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper")
    assert cfg.hydra.sweeper.direction == "minimize"
    assert set(cfg.hydra.sweeper.params) == {"module.optimizer.lr", "model.codec.sigma", "model.codec.decimal_sigma"}
    for key in cfg.hydra.sweeper.params:  # the searched keys exist in the default model (HIH_C)
        assert OmegaConf.select(cfg, key) is not None


def _env(tmp_path: Path) -> dict:
    return cli_env(tmp_path / "data")


@pytest.mark.slow  # a hih-train subprocess
def test_slurm_sweep_submits_multinode_array(tmp_path):
    """hih-train -m with hydra/launcher=slurm writes one sbatch job array whose jobs are multi-node DDP runs.

    A stand-in ``sbatch`` on PATH keeps the script and refuses the submission, so nothing runs.
    """
    fake = tmp_path / "bin"
    fake.mkdir()
    sbatch = fake / "sbatch"
    sbatch.write_text(f'#!/bin/sh\ncp "$1" {tmp_path}/job.sh\necho "sbatch: error: no cluster here" >&2\nexit 1\n')
    (fake / "srun").write_text("#!/bin/sh\nexit 1\n")  # submitit only checks that it exists
    (fake / "sinfo").write_text("#!/bin/sh\nexit 1\n")  # no partition to check the request against
    for tool in ("sbatch", "srun", "sinfo"):
        (fake / tool).chmod((fake / tool).stat().st_mode | stat.S_IEXEC)
    env = {**_env(tmp_path), "PATH": f"{fake}:{os.environ['PATH']}"}
    proc = run_cli(
        "hih-train",
        [
            "-m",
            "sweep=heads",
            "hydra/launcher=slurm",
            "trainer=ddp_multinode",
            "hydra.launcher.partition=gpu",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    script = (tmp_path / "job.sh").read_text()
    assert proc.returncode != 0  # the stand-in refused it
    for flag in (
        "--nodes=2",
        "--ntasks-per-node=4",
        "--gpus-per-node=4",
        "--partition=gpu",
        "--signal=USR1@300",
        "--requeue",
        "--array=0-5%6",
        "--time=2880",
    ):
        assert f"#SBATCH {flag}\n" in script, f"{flag} missing from\n{script}"
    assert "USR2" not in script


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_local_multirun_with_a_failing_job_then_report(tmp_path):
    """Three tiny jobs of the heads sweep, one failing inside the job (a negative head width only WOV
    builds), then hih-report: every run is a row and the failed one says why."""
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "hih-train",
        [
            "-m",
            "sweep=heads",
            'hydra.sweeper.params.model="baseline,wsm,wov"',
            "model.head_width=-3",
            *TINY,
            f"hydra.sweep.dir={sweep}",
        ],
        env=_env(tmp_path),
        cwd=tmp_path,
        timeout=400,
        check=False,
    )
    # Hydra runs every job, then re-raises the failure: the sweep as a whole fails.
    assert proc.returncode != 0
    assert "negative dimension" in proc.stderr
    for num in (0, 1):
        assert (sweep / str(num) / "metrics.json").is_file(), proc.stderr[-4000:]
    assert not (sweep / "2" / "metrics.json").exists()

    # One W&B group per grid point of the sweep, tags naming it; every job's config records its grid point.
    configs = [yaml.safe_load((sweep / str(n) / "csv" / "hparams.yaml").read_text()) for n in (0, 1)]
    assert configs[0]["wandb_sweep"] == configs[1]["wandb_sweep"] and configs[0]["wandb_sweep"].startswith("heads-")
    assert configs[0]["wandb_group"] == configs[0]["wandb_sweep"] + "-model=baseline"
    assert configs[1]["wandb_group"] == configs[1]["wandb_sweep"] + "-model=wsm"
    assert configs[0]["sweep_overrides"] == "model=baseline" and "sweep:heads" in configs[0]["tags"]

    run_cli("hih-report", [f"multirun_dir={sweep}"], env=_env(tmp_path), cwd=tmp_path, timeout=120)
    out = sweep / "report"
    markdown = (out / "report.md").read_text()
    print(markdown)  # shown with -s: the sample table for humans
    assert "| model=baseline | baseline | completed |" in markdown
    assert "| model=wsm | wsm | completed |" in markdown
    assert "| model=wov | wov | failed |" in markdown and "negative dimension" in markdown
    rows = {r["run"]: r for r in _read_csv(out / "runs.csv")}
    assert set(rows) == {"model=baseline", "model=wsm", "model=wov"}
    assert rows["model=wov"]["status"] == "failed" and rows["model=wov"]["test/nme"] == ""
    for label in ("model=baseline", "model=wsm"):
        nme = float(rows[label]["test/nme"])
        metrics = yaml.safe_load((sweep / ("0" if label.endswith("baseline") else "1") / "metrics.json").read_text())
        assert nme == pytest.approx(metrics["test/nme"])
    nme_rows = _read_csv(out / "nme.csv")
    # Each plain-heatmap run is also a row per re-decode of its network.
    assert [r["run"] for r in nme_rows if "re-decode" not in r["run"]] == ["model=baseline", "model=wsm", "model=wov"]
    assert "model=baseline → dark (re-decode)" in [r["run"] for r in nme_rows]
    assert {"Fullset", "Pose", "Exp.", "Ill.", "Mu.", "Occ.", "Blur"} <= set(nme_rows[0])
    assert (out / "runs_nme.png").stat().st_size > 0


@pytest.mark.slow
def test_multirun_ends_without_a_callback_warning(tmp_path):
    """SweepCallback implements Hydra's whole Callback interface: Hydra calls on_multirun_end (and the
    other hooks) on every callback and used to warn 'Callback SweepCallback.on_multirun_end raised
    AttributeError' at the end of every multirun."""
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "hih-train",
        [
            "-m",
            "sweep=heads",
            "hydra.sweeper.params.model=baseline",
            "train=false",
            "test=false",
            *TINY,
            f"hydra.sweep.dir={sweep}",
        ],
        env=_env(tmp_path),
        cwd=tmp_path,
    )
    assert (sweep / "0" / "status.json").is_file()  # the callback did run
    output = proc.stdout + proc.stderr
    assert "raised AttributeError" not in output and "Callback SweepCallback" not in output, output[-4000:]
