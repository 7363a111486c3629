"""Two nodes simulated on one host: two torchrun "nodes" (``--nnodes=2``, one process each) of
``hih-train trainer=ddp_multinode`` on the CPU, as a cluster without SLURM (or one job per node) runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli import BIN, cli_env, run_cli
from tiny import DDP, QUIET
from tiny import TINY_SUBPROCESS as TINY


def _env(tmp_path: Path) -> dict[str, str]:
    return cli_env(tmp_path / "data", drop=("SLURM_",))  # torchrun's ranks, not SLURM's


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.slow
def test_two_nodes_simulated_with_torchrun(tmp_path):
    """Two torchrun "nodes" on this host (one process each) of trainer=ddp_multinode on the CPU: both exit
    0, rank 0 writes the metrics, equal to a 1-process evaluation of the same checkpoint."""
    run = tmp_path / "run"
    port = 29500 + os.getpid() % 1000
    args = [*TINY, *QUIET, *DDP, "trainer=ddp_multinode", "trainer.accelerator=cpu", "trainer.devices=1"]
    args += ["trainer.sync_batchnorm=false", "trainer.precision=32", "trainer.max_epochs=1", "plot_samples=0"]
    nodes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes=2",
                f"--node_rank={rank}",
                "--nproc_per_node=1",
                "--master_addr=127.0.0.1",
                f"--master_port={port}",
                str(BIN / "hih-train"),
                *args,
                f"hydra.run.dir={run}",
            ],
            env=_env(tmp_path),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]
    try:
        outs = [p.communicate(timeout=300)[0] for p in nodes]
    finally:
        for p in nodes:
            if p.poll() is None:
                p.kill()
    for p, out in zip(nodes, outs):
        assert p.returncode == 0, out[-4000:]
    assert (run / "metrics.json").is_file()
    single = tmp_path / "single"
    ckpt = run / "checkpoints" / "last.ckpt"
    run_cli(
        "hih-eval",
        [*TINY, *DDP, "plot_samples=0", f"ckpt_path={ckpt}", f"hydra.run.dir={single}"],
        env=_env(tmp_path),
        cwd=tmp_path,
    )
    assert _metrics(run) == _metrics(single)
