"""A regular (non-editable) install finds its configs: build a wheel, install it where the repository's
src/ and conf/ are not visible, and compose a training config from another folder."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_the_configs(tmp_path):
    # Build from a copy so the worktree gets no build/ or egg-info litter.
    src = tmp_path / "src_copy"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "local")
    shutil.copytree(REPO / "src", src / "src", ignore=ignore)
    shutil.copytree(REPO / "conf", src / "conf", ignore=ignore)
    dist = tmp_path / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", dist, src], check=True, timeout=120)
    (wheel,) = dist.glob("hih-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert "hih/conf/train.yaml" in names and "hih/conf/hydra/default.yaml" in names
    # The SLURM launcher is a Hydra plugin: Hydra finds it only in the hydra_plugins namespace.
    assert "hydra_plugins/hih_launcher/slurm_launcher.py" in names

    target = tmp_path / "target"
    subprocess.run([*pip, "install", "--no-deps", "--target", target, wheel], check=True, timeout=120)
    shutil.rmtree(src)  # nothing of the source tree left to fall back on

    # python -S: no site-packages processing, so the editable install's .pth (the repo's src/) is not
    # on the path; the venv's dependencies come in through PYTHONPATH after the target.
    env = {k: v for k, v in os.environ.items() if k not in ("HIH_CONFIG_DIR", "PROJECT_ROOT")}
    env["PYTHONPATH"] = os.pathsep.join([str(target), sysconfig.get_paths()["purelib"]])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def isolated(*args, check: bool = True) -> subprocess.CompletedProcess:
        """``python -S *args`` from a folder outside the repository, seeing only the wheel and the venv's deps."""
        run = functools.partial(subprocess.run, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60)
        return run([sys.executable, "-S", *args], check=check)

    where = isolated("-c", "import hih.cli._hydra as h; print(h.__file__); print(h.config_dir())").stdout.split()
    assert where == [str(target / "hih" / "cli" / "_hydra.py"), str(target / "hih" / "conf")]

    job = isolated(target / "bin" / "hih-train", "--cfg", "job", check=False)
    assert job.returncode == 0, job.stderr[-3000:]
    assert "_target_: lightning.pytorch.trainer.Trainer" in job.stdout
    assert "model:" in job.stdout and "data:" in job.stdout

    # The SLURM launcher is a Hydra plugin: Hydra finds it only in the hydra_plugins namespace.
    plugin = isolated("-c", "import hydra_plugins.hih_launcher.slurm_launcher as m; print(m.__file__)").stdout.strip()
    assert plugin == str(target / "hydra_plugins" / "hih_launcher" / "slurm_launcher.py")
