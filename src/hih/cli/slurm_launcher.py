"""What the SLURM launcher of ``hydra/launcher=slurm`` (``hydra_plugins.hih_launcher``) adds to Hydra's
submitit launcher: three things a first try on a real cluster needs.

- GPUs follow the trainer: ``gpus_per_node: null`` asks for ``trainer.devices`` GPUs on a GPU trainer and
  none on a CPU trainer (``trainer.accelerator=cpu``); a number sets it.
- A request no node of the partition can meet (nodes, CPUs, memory, GPUs, time) fails before anything is
  submitted, with the override that fixes it: SLURM would keep such a job pending forever
  (Reason=PartitionConfig) or refuse it with a message that names no setting.
- The sweep's wait ends when a job ends, also on a cluster without accounting. submitit learns a job's
  state from ``sacct`` only; where that answers "accounting storage is disabled", a job that died
  without writing its result (killed, a rank that never returned) was waited for forever.
  :class:`SchedulerWatcher` then asks the controller (``scontrol show job``), and takes a job the
  controller has forgotten (it keeps ended jobs for MinJobAge seconds) as ended.
"""

from __future__ import annotations

import contextlib
import logging
import re
import subprocess
import time
from typing import Any

from omegaconf import OmegaConf
from submitit.slurm.slurm import SlurmInfoWatcher

__all__ = [
    "SchedulerWatcher",
    "check_request",
    "controller_states",
    "gpus_for_trainer",
    "partition_limits",
    "prepare",
    "watching",
]

log = logging.getLogger(__name__)

#: Job states in which a job may still write its result (submitit's list lacks the rarer ones: a
#: requeued job passes through some of them).
NOT_ENDED = {
    "READY", "PENDING", "RUNNING", "UNKNOWN", "REQUEUED", "COMPLETING", "PREEMPTED", "CONFIGURING", "SUSPENDED",
    "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED",
}  # fmt: skip
#: The state given to a job that neither accounting nor the controller knows any more.
GONE = "ENDED"


class SchedulerWatcher(SlurmInfoWatcher):
    """submitit's job watcher: ``sacct`` where the cluster keeps accounting, else ``scontrol show job``."""

    def update(self) -> None:
        command = self._make_command()
        if command is None:
            return
        self._num_calls += 1
        proc = _run(command)
        if proc is not None and proc.returncode == 0:
            self._output = proc.stdout
            self._info_dict.update(self.read_info(proc.stdout))
        else:
            if proc is not None:
                log.debug("sacct failed (%s); asking the controller", proc.stderr.strip())
            main_ids = {j.split("_")[0] for j in self._registered - self._finished}
            self._info_dict.update(controller_states(main_ids, self._registered))
        self._last_status_check = time.time()
        for job_id in self._registered - self._finished:
            if self.is_done(job_id, mode="cache"):
                self._finished.add(job_id)

    def is_done(self, job_id: str, mode: str = "standard") -> bool:
        return self.get_state(job_id, mode=mode).split()[0].upper() not in NOT_ENDED


def _run(command: list[str]) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        log.warning("%s: %s", command[0], e)
        return None


def controller_states(main_ids: set[str], registered: set[str]) -> dict[str, dict[str, str]]:
    """``{job id: {"JobID", "State"}}`` from ``scontrol show job``, array tasks as ``<array id>_<task>``.

    A job the controller answers "Invalid job id" for has ended long enough ago to be forgotten: its
    registered ids get :data:`GONE`. A controller that does not answer changes nothing (still running).
    """
    states: dict[str, dict[str, str]] = {}
    for main in sorted(main_ids):
        proc = _run(["scontrol", "show", "job", "--oneliner", main])
        if proc is None:
            continue
        if proc.returncode != 0:
            if "Invalid job id" in proc.stderr:
                for job_id in registered:
                    if job_id.split("_")[0] == main:
                        states[job_id] = {"JobID": job_id, "State": GONE}
            continue
        for line in proc.stdout.splitlines():
            state = _field(line, "JobState")
            if state is None:
                continue
            array, task = _field(line, "ArrayJobId"), _field(line, "ArrayTaskId")
            if array is None or task is None:
                ids = [_field(line, "JobId") or main]
            else:  # "3", or a pending range "0-3%2" / "1,3"
                ids = _array_ids(array, task)
            for job_id in ids:
                states[job_id] = {"JobID": job_id, "State": state}
    return states


def _field(line: str, name: str) -> str | None:
    match = re.search(rf"(?:^|\s){name}=(\S+)", line)
    return match.group(1) if match else None


def _array_ids(array: str, tasks: str) -> list[str]:
    out = []
    for part in tasks.split("%")[0].split(","):
        lo, _, hi = part.partition("-")
        out += [f"{array}_{i}" for i in range(int(lo), int(hi or lo) + 1)]
    return out


def gpus_for_trainer(trainer: Any) -> int:
    """GPUs per node that ``trainer`` uses: its device count on a GPU (or auto) accelerator, 0 on the CPU."""
    accelerator = str(OmegaConf.select(trainer, "accelerator", default="cpu") or "cpu").lower()
    if accelerator == "cpu":
        return 0
    devices = OmegaConf.select(trainer, "devices", default=1)
    if isinstance(devices, (list, tuple)) or OmegaConf.is_list(devices):
        return len(devices)
    if isinstance(devices, str) and "," in devices:
        return len([d for d in devices.split(",") if d.strip()])
    try:
        return max(int(devices), 0)
    except (TypeError, ValueError):  # "auto" / -1: every GPU of the node is not a number SLURM takes
        raise ValueError(
            f"trainer.devices={devices!r}: the SLURM launcher needs a GPU count per node; set trainer.devices=N "
            "or hydra.launcher.gpus_per_node=N"
        ) from None


def partition_limits(partition: str | None) -> dict[str, float] | None:
    """The largest node of ``partition`` (default: the cluster's default partition) as
    ``{"nodes", "cpus", "mem_mb", "gpus", "time_min"}``; None where ``sinfo`` does not answer."""
    proc = _run(
        ["sinfo", "--noheader", "--format=%P|%D|%c|%m|%G|%l"] + ([f"--partition={partition}"] if partition else [])
    )
    if proc is None or proc.returncode != 0 or not proc.stdout.strip():
        return None
    rows = [line.split("|") for line in proc.stdout.strip().splitlines()]
    if not partition:
        rows = [r for r in rows if r[0].endswith("*")] or rows
    num = lambda s: float(re.sub(r"[^0-9.]", "", s) or 0)  # noqa: E731  ("21694+" -> 21694)
    return {
        "nodes": sum(num(r[1]) for r in rows),
        "cpus": max(num(r[2]) for r in rows),
        "mem_mb": max(num(r[3]) for r in rows),
        "gpus": max(_gres_gpus(r[4]) for r in rows),
        "time_min": max(_minutes(r[5]) for r in rows),
    }


def _gres_gpus(gres: str) -> int:
    # "gpu:4", "gpu:a100:4(S:0-1)", "gpu:a100:2,gpu:v100:2"; "(null)" without GPUs
    return sum(int(m.group(1)) for m in re.finditer(r"gpu(?::[^:,(]+)?:(\d+)", gres))


def _minutes(limit: str) -> float:
    if limit in ("infinite", "UNLIMITED", "n/a", ""):
        return float("inf")
    days, _, rest = limit.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    hours, minutes, seconds = ([0, 0, 0] + parts)[-3:] if len(parts) > 1 else (0, parts[0], 0)
    return (int(days or 0) * 24 + hours) * 60 + minutes + seconds / 60


def check_request(params: dict[str, Any], limits: dict[str, float]) -> None:
    """Raise ValueError, naming the override, for a request no node of the partition can meet."""
    where = f"partition {params.get('partition') or '(default)'}"
    nodes = int(params.get("nodes") or 1)
    tasks = int(params.get("tasks_per_node") or 1)
    cpus = tasks * int(params.get("cpus_per_task") or 1)
    problems = []
    if nodes > limits["nodes"]:
        problems.append(
            f"{nodes} nodes (trainer.num_nodes / hydra.launcher.nodes) but {where} has {limits['nodes']:.0f}"
        )
    if cpus > limits["cpus"]:
        problems.append(
            f"{cpus} CPUs per node ({tasks} tasks x hydra.launcher.cpus_per_task={params.get('cpus_per_task')}) but "
            f"the nodes of {where} have at most {limits['cpus']:.0f}: set hydra.launcher.cpus_per_task="
            f"{max(int(limits['cpus']) // tasks, 1)}"
        )
    mem_gb = params.get("mem_gb")
    if mem_gb and mem_gb * 1024 > limits["mem_mb"]:
        problems.append(
            f"hydra.launcher.mem_gb={mem_gb} but the nodes of {where} have at most {limits['mem_mb'] / 1024:.1f} GB: "
            f"set hydra.launcher.mem_gb={max(int(limits['mem_mb'] // 1024), 1)}"
        )
    gpus = int(params.get("gpus_per_node") or 0)
    if gpus > limits["gpus"]:
        problems.append(
            f"{gpus} GPUs per node (hydra.launcher.gpus_per_node, following trainer.devices) but the nodes of {where} "
            f"have {limits['gpus']:.0f}: on CPU nodes use trainer.accelerator=cpu (no GPU is asked for), else "
            "hydra.launcher.partition=<a GPU partition>"
        )
    minutes = params.get("timeout_min")
    if minutes and minutes > limits["time_min"]:
        problems.append(
            f"hydra.launcher.timeout_min={minutes} but {where} allows {limits['time_min']:.0f} minutes: set "
            f"hydra.launcher.timeout_min={int(limits['time_min'])}"
        )
    if problems:
        raise ValueError("SLURM would never start these jobs: " + "; ".join(problems))


def prepare(params: dict[str, Any], trainer: Any) -> None:
    """Fill the launcher's ``params`` in place: GPUs from ``trainer`` when ``gpus_per_node`` is null; then
    check the request against the partition where ``sinfo`` answers (ValueError naming the override)."""
    if params.get("gpus_per_node") is None:
        params["gpus_per_node"] = gpus_for_trainer(trainer) or None
    limits = partition_limits(params.get("partition"))
    if limits is not None:
        check_request(params, limits)


@contextlib.contextmanager
def watching(delay_s: float = 60):
    """submitit's SLURM jobs use :class:`SchedulerWatcher` (polling at most ``delay_s`` apart) inside."""
    from submitit.slurm.slurm import SlurmJob

    previous = SlurmJob.watcher
    SlurmJob.watcher = SchedulerWatcher(delay_s=delay_s)
    try:
        yield SlurmJob.watcher
    finally:
        SlurmJob.watcher = previous
