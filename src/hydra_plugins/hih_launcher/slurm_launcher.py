"""``hydra/launcher=slurm``: submitit's SLURM launcher with GPUs following the trainer, the request checked
against the partition before submitting, and a job watcher that works without accounting; the work is in
:mod:`hih.cli.slurm_launcher` (imported when a sweep launches: Hydra imports this module on every start)."""

from __future__ import annotations

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as _SubmititSlurmLauncher


class SlurmLauncher(_SubmititSlurmLauncher):
    def launch(self, job_overrides, initial_job_idx):
        from hih.cli.slurm_launcher import prepare, watching

        try:
            prepare(self.params, self.config.trainer)
        except ValueError as e:  # one line, not Hydra's traceback of its own frames; nothing was submitted
            raise SystemExit(f"Error: {e}") from None
        with watching():
            return super().launch(job_overrides, initial_job_idx)
