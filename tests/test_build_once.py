"""Generated sets built once under concurrent first use: processes started together on an empty data
folder (SLURM array jobs, DDP ranks) all get the set; one builds it, none fails, none reads a half-written
set. Without the build lock, every process but the first failed on the rename ('Directory not empty')."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from hih.data.readers.wflw import LIST_DIR
from hih.data.synthetic import MANIFEST

N_PROCS = 4
BUILD = {
    "faces": "from hih.data.synthetic import ensure_synthetic as make\n"
    "make(root, n_train=40, n_test=8, image_size=(64, 96), workers=1)",
    "photos": "from hih.data.datasets.synthetic_photos import ensure_synthetic_photos as make\n"
    "make(root, n_train=6, n_test=2, photo_size=(160, 200), iod_range=(20.0, 40.0), workers=1)",
}
# Every process waits for the same start signal, then builds; afterwards it reads the whole set.
SCRIPT = """
import sys, time
from pathlib import Path
root, go = Path(sys.argv[1]), Path(sys.argv[2])
while not go.exists():
    time.sleep(0.005)
{build}
from hih.data.readers.wflw import read_wflw
faces = sum(len(read_wflw(root, split)) for split in ("train", "test"))
print("faces", faces, flush=True)
"""


@pytest.mark.slow  # subprocesses
@pytest.mark.parametrize("kind", sorted(BUILD))
def test_processes_started_together_on_an_empty_folder_all_get_the_set(tmp_path, kind):
    root, go = tmp_path / "data" / kind, tmp_path / "go"
    script = SCRIPT.format(build=BUILD[kind])
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(root), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
        )
        for _ in range(N_PROCS)
    ]
    time.sleep(2)  # every interpreter has started and waits for the signal
    go.touch()
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (_out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    counts = {out.split("faces")[-1].strip() for out, _ in outs}
    assert len(counts) == 1 and int(counts.pop()) > 0  # every process read the same, whole set
    built = [out for out, _ in outs if "[hih] wrote" in out]
    assert len(built) == 1, "the set was generated more than once"
    assert json.loads((root / MANIFEST).read_text())["n_train"] in (40, 6)
    listed = [line.split()[-1] for f in (root / LIST_DIR).glob("*.txt") for line in f.read_text().splitlines()]
    assert listed and all((root / "WFLW_images" / rel).is_file() for rel in listed)
    leftovers = [p.name for p in root.parent.iterdir() if p.name.startswith(f".{kind}.tmp-")]
    assert not leftovers, leftovers
