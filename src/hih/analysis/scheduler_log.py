"""What the scheduler said about a job that ended without a word of its own.

A job that SLURM cancels (``scancel``, the time limit, a preemption without requeue) is killed: nothing in
it writes its end, so its ``status.json`` still says ``running``. SLURM writes the reason into the job's
stderr file (``slurmstepd: error: *** JOB 16 ON node CANCELLED AT <time> DUE TO TIME LIMIT ***``); the
job's ``status.json`` names that file (``scheduler_log``, recorded by the sweep's Hydra callback).
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["ended_by_scheduler"]

_ENDED = re.compile(r"\*\*\* (?:JOB|STEP) \S+ ON \S+ (CANCELLED AT \S+(?: DUE TO [A-Z ]+?)?)(?: \*\*\*|$)")


def ended_by_scheduler(log_file: str | Path, tail_bytes: int = 65536) -> str | None:
    """The scheduler's last word on the job in ``log_file`` when it ended the job (``CANCELLED AT ...``,
    with its reason); None when the file is missing or the last word is a requeue (the job runs again)."""
    try:
        with open(log_file, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(fh.tell() - tail_bytes, 0))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return None
    found = _ENDED.findall(text)
    if not found or found[-1].endswith("DUE TO JOB REQUEUE"):
        return None
    return found[-1]
