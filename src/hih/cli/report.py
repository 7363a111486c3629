"""hih-report: a multirun folder -> the paper's tables (Markdown, CSV) and plots.

hih-report multirun_dir=outputs/train/multirun/2026-01-01_12-00-00
hih-report multirun_dir=... ref=model=wsm     # seeds: paired differences to the WSM rows
"""

from __future__ import annotations

from omegaconf import DictConfig

from hih.cli._hydra import hih_main


@hih_main("report", uses_lightning=False)
def main(cfg: DictConfig) -> None:
    from rich.console import Console

    from hih.analysis.report import write_report

    report = write_report(cfg.multirun_dir, cfg.output_dir, stage=cfg.stage, plots=cfg.plots, ref=cfg.get("ref"))
    console = Console()
    print(report.markdown.read_text())  # plain: Markdown tables must not be re-wrapped
    console.print(f"\nreport: {report.markdown}\ncsv: {', '.join(str(p) for p in report.csvs.values())}", markup=False)
    if report.plots:
        console.print(f"plots: {', '.join(str(p) for p in report.plots.values())}", markup=False)


if __name__ == "__main__":
    main()
