"""A generated data set on disk: written once into a temporary folder and renamed into place, reused
while its manifest matches; WFLW list files written from per-item workers.

Used by every generated set (the synthetic faces, the synthetic photos): a folder holds either nothing,
a complete set with its manifest, or something hih did not write (never touched).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import tempfile
from pathlib import Path

import cv2

from hih.data.readers.wflw import LIST_DIR, list_file_name

#: The file in a generated set's folder that says what it holds; the set is reused while it is equal.
MANIFEST = "synthetic_manifest.json"


def _init_worker() -> None:
    cv2.setNumThreads(1)


def write_wflw_set(
    tmp: Path, manifest: dict, jobs: dict[str, list], work, progress: bool, workers: int, desc: str, unit: str
) -> None:
    """Run ``work(job) -> list of WFLW list lines`` (it writes its images under ``tmp/WFLW_images/<split>/``)
    for every job of every split, then write the list files and the manifest into ``tmp``.

    ``work`` must be a module-level function (it runs in spawned processes when ``workers > 1``).
    """
    for split in jobs:
        (tmp / "WFLW_images" / split).mkdir(parents=True, exist_ok=True)
    (tmp / LIST_DIR).mkdir(parents=True, exist_ok=True)
    flat = [(split, job) for split, js in jobs.items() for job in js]
    from hih.progress import track

    def done(outputs):  # a bar on a terminal; a few plain lines in a log file (a SLURM job's .err)
        return track(outputs, desc, total=len(flat), unit=unit) if progress else outputs

    lines: dict[str, list[str]] = {split: [] for split in jobs}
    if workers > 1 and len(flat) > 32 and not mp.current_process().daemon:
        # spawn, never fork: forking a process whose torch/OpenMP threads are running can
        # deadlock the children (seen when a trainer generates the set on first use).
        ctx = mp.get_context("spawn")
        with ctx.Pool(workers, initializer=_init_worker) as pool:
            for (split, _), out in done(zip(flat, pool.imap(work, [j for _, j in flat], chunksize=4))):
                lines[split] += out
    else:
        for split, out in done((split, work(job)) for split, job in flat):
            lines[split] += out
    for split, chunk in lines.items():
        (tmp / LIST_DIR / list_file_name(split)).write_text("\n".join(chunk) + ("\n" if chunk else ""))
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))


def read_manifest(root: str | Path) -> dict | None:
    f = Path(root) / MANIFEST
    try:
        return json.loads(f.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_once(root: Path, manifest: dict, generate, progress: bool = True) -> Path:
    """Make ``root`` hold the set that ``manifest`` describes: reuse it when its manifest matches, else call
    ``generate(tmp)`` on a temporary folder next to ``root`` (it writes the set and the manifest) and rename
    it into place, so ``root`` never holds a half-written set. A non-empty ``root`` without a manifest is
    never touched (FileExistsError). Processes that start together on an empty folder build it once
    (:func:`hih.data.build_lock.build_lock`): the others wait and reuse it. Returns ``root``.
    """
    from hih.data.build_lock import build_lock

    if read_manifest(root) == manifest:
        return root
    with build_lock(root):  # decided again under the lock: another process may have built it meanwhile
        return _write_once_locked(root, manifest, generate, progress)


def _write_once_locked(root: Path, manifest: dict, generate, progress: bool) -> Path:
    old = read_manifest(root)
    if old == manifest:
        return root
    if root.exists() and old is None and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(
            f"{root} exists and is not a generated set written by hih (no {MANIFEST}); "
            f"refusing to overwrite it. Choose another folder for the generated data."
        )
    if old is not None and progress:
        print(f"[hih] generated set at {root} was made with {old}; regenerating with {manifest}")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the dataset is not
    try:
        generate(tmp)
        backup = None
        if root.exists():
            if old is None:  # empty folder
                root.rmdir()
            else:
                backup = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
                backup.rmdir()
                os.rename(root, backup)
        try:
            os.rename(tmp, root)
        except OSError:
            # another process finished first: keep its set if it is the one asked for
            if read_manifest(root) == manifest:
                return root
            if backup is not None and not root.exists():
                os.rename(backup, root)
            raise
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root
