"""``hydra/launcher=slurm``: submitit's SLURM launcher with GPUs following the trainer, the request checked
against the partition before submitting, a job watcher that works without accounting, and one writer of
the run folder per job; the work is in :mod:`hih.cli.slurm_launcher` (imported when a sweep launches:
Hydra imports this module on every start)."""

from __future__ import annotations

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as _SubmititSlurmLauncher

#: Every srun task of a job runs the Hydra job; ranks > 0 leave the run folder to rank 0 (its Hydra
#: configs and log file) and log to their task's own files (``.submitit/<job>/<job>_<rank>_log.out``).
OTHER_RANKS = [
    "hydra.output_subdir=null",
    "hydra.job_logging.root.handlers=[console]",
    "~hydra.job_logging.handlers.file",
]


class SlurmLauncher(_SubmititSlurmLauncher):
    def launch(self, job_overrides, initial_job_idx):
        from hih.cli.slurm_launcher import prepare, watching

        try:
            prepare(self.params, self.config.trainer)
        except ValueError as e:  # one line, not Hydra's traceback of its own frames; nothing was submitted
            raise SystemExit(f"Error: {e}") from None
        with watching():
            return super().launch(job_overrides, initial_job_idx)

    def __call__(self, sweep_overrides, job_dir_key, job_num, job_id, singleton_state):
        import submitit

        if submitit.JobEnvironment().global_rank > 0:
            sweep_overrides = [*sweep_overrides, *OTHER_RANKS]
        return super().__call__(sweep_overrides, job_dir_key, job_num, job_id, singleton_state)
