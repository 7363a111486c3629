"""Do the paper's learned heads learn? A learning-curve study on synthetic faces, on the CPU.

Each run trains one model with a constant learning rate and validates every ``--val-every`` optimizer
steps, so the validation points of one run are a ladder of training budgets. The curves come from
each run's ``csv/metrics.csv``:

- ``val/decimal_acc``: fraction of landmarks whose decimal argmax is the target's decimal cell
  (HIH heads; chance 1/d^2), ``val/offset_err`` for WOV / WOM (cells);
- ``val/decimal_gain`` / ``val/offset_gain``: integer-only NME (cell centre) minus full NME, i.e.
  what the compensation head adds beyond centring the integer cell;
- ``val/nme_integer``: the integer heatmap alone, against the baseline's ``val/nme`` (does the head
  wreck the shared backbone?).

Writes ``study.json`` (every curve), ``study.md`` (a table at each ladder step) and ``study.png``
(the curves) into ``--out``. Finished runs (their ``metrics.json`` exists) are not trained again,
so an interrupted study resumes where it stopped.

    python scripts/decimal_study.py --out outputs/decimal_study                 # the default ladder
    python scripts/decimal_study.py --runs "hih_c=model=hih_c" "hih_c_w05=model=hih_c model.loss.head=0.05"
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

#: Small enough that a run reaches thousands of optimizer steps on two cores: 64 px input, a 16x16
#: heatmap (stride 4 as in the paper), a 4x4 decimal map, 32-channel hourglass. Constant learning
#: rate, so that every validation point is what a shorter budget would have reached.
COMMON = [
    "data.input_size=64",
    "data.heatmap_size=16",
    "model.decimal_size=4",
    "model.channels=32",
    "module.scheduler=null",
    "trainer.max_epochs=-1",
    "trainer.check_val_every_n_epoch=null",
    "trainer.log_every_n_steps=10",
    "plot_samples=0",
    "logger=csv",
]

#: The paper's label settings (issue 12): cell-centred integer Gaussian, rounded decimal index.
PAPER_LABELS = ["++model.codec.integer_target=cell", "++model.codec.decimal_quantizer=round"]

DEFAULT_RUNS = {
    "baseline": "model=baseline",
    "hih_c": "model=hih_c",
    "hih_t": "model=hih_t",
    "wov": "model=wov",
    "wom": "model=wom",
    "hih_l": "model=hih_l",
}

CURVES = ("val/nme", "val/nme_integer", "val/decimal_acc", "val/decimal_gain", "val/offset_err", "val/offset_gain")


def parse_runs(specs: list[str] | None) -> dict[str, list[str]]:
    """``name=override override ...`` -> {name: [overrides]} (default: :data:`DEFAULT_RUNS`)."""
    items = dict(s.split("=", 1) for s in specs) if specs else DEFAULT_RUNS
    return {name: spec.split() for name, spec in items.items()}


def train(name: str, overrides: list[str], args) -> Path:
    run_dir = args.out / "runs" / name
    if (run_dir / "metrics.json").is_file():
        print(f"[study] {name}: done already ({run_dir})", flush=True)
        return run_dir
    cmd = [
        sys.executable, "-m", "hih.cli.train", *COMMON, *(PAPER_LABELS if args.labels == "paper" else []),
        f"trainer.max_steps={args.steps}", f"trainer.val_check_interval={args.val_every}",
        f"seed={args.seed}", *overrides, *args.extra, f"hydra.run.dir={run_dir}",
    ]
    print(f"[study] {name}: {' '.join(cmd[3:])}", flush=True)
    t0 = time.perf_counter()
    log = run_dir.parent / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        rc = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "MPLBACKEND": "Agg"})
    if rc:
        raise SystemExit(f"[study] {name} failed (exit {rc}); see {log}")
    print(f"[study] {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    return run_dir


def read_curves(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """{metric: [(step, value), ...]} for the validation metrics of one run's CSV log."""
    out: dict[str, list[tuple[int, float]]] = {}
    with open(run_dir / "csv" / "metrics.csv") as fh:
        for row in csv.DictReader(fh):
            for key in CURVES:
                value = row.get(key, "")
                if value not in ("", None):
                    out.setdefault(key, []).append((int(row["step"]), float(value)))
    return out


def decimal_chance(run_dir: Path) -> float | None:
    cfg = run_dir / ".hydra" / "config.yaml"
    if not cfg.is_file():
        return None
    from omegaconf import OmegaConf

    model = OmegaConf.load(cfg).model
    return 1.0 / int(model.decimal_size) ** 2 if "decimal_size" in model else None


def table(curves: dict[str, dict], steps: list[int]) -> str:
    """Markdown: one row per run and ladder step."""
    head = "| run | step | val NME | integer only | decimal acc | gain (NME) | offset err (cells) |\n|---|---|---|---|---|---|---|"
    rows = [head]
    for name, c in curves.items():
        for step in steps:
            def at(key):
                pts = [v for s, v in c.get(key, []) if s <= step]
                return f"{pts[-1]:.3f}" if pts else "-"
            gain = at("val/decimal_gain") if c.get("val/decimal_gain") else at("val/offset_gain")
            rows.append(f"| {name} | {step} | {at('val/nme')} | {at('val/nme_integer')} | {at('val/decimal_acc')} | {gain} | {at('val/offset_err')} |")
    return "\n".join(rows)


def plot(curves: dict[str, dict], chance: float | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("val/decimal_acc", "decimal-cell accuracy"), ("val/decimal_gain", "gain over the cell centre (NME)"),
              ("val/nme_integer", "integer heatmap alone (NME)")]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    for ax, (key, title) in zip(axes, panels):
        for name, c in curves.items():
            pts = c.get(key) or (c.get("val/offset_gain") if key == "val/decimal_gain" else None)
            if key == "val/nme_integer" and not pts:
                pts = c.get("val/nme") if name.startswith("baseline") else None
            if pts:
                ax.plot([s for s, _ in pts], [v for _, v in pts], marker="o", ms=3, label=name)
        if key == "val/decimal_acc" and chance:
            ax.axhline(chance, color="k", ls="--", lw=1, label=f"chance (1/{round(math.sqrt(1 / chance))}^2)")
        if key == "val/decimal_gain":
            ax.axhline(0.0, color="k", ls="--", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("optimizer steps")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("outputs/decimal_study"))
    p.add_argument("--runs", nargs="*", help='"name=override override ..." (default: the paper heads, HIH_L, baseline)')
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--val-every", type=int, default=100)
    p.add_argument("--labels", choices=("paper", "config"), default="paper",
                   help="paper: the authors' label settings; config: whatever the composed config says")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--extra", nargs="*", default=[], help="overrides added to every run")
    p.add_argument("--report-only", action="store_true", help="do not train; tabulate the runs found in --out")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    runs = parse_runs(args.runs)
    dirs = {}
    for name, overrides in runs.items():
        run_dir = args.out / "runs" / name
        dirs[name] = run_dir if args.report_only else train(name, overrides, args)
    curves = {n: read_curves(d) for n, d in dirs.items() if (d / "csv" / "metrics.csv").is_file()}
    chance = next((c for c in (decimal_chance(d) for d in dirs.values()) if c), None)
    ladder = sorted({s for c in curves.values() for pts in c.values() for s, _ in pts})
    shown = [s for s in ladder if s in _log_ladder(ladder)]
    (args.out / "study.json").write_text(json.dumps({"runs": {n: " ".join(o) for n, o in runs.items()}, "common": COMMON,
                                                      "labels": args.labels, "chance": chance, "curves": curves}, indent=1))
    md = table(curves, shown)
    (args.out / "study.md").write_text(md + "\n")
    plot(curves, chance, args.out / "study.png")
    print(md)
    print(f"[study] wrote {args.out / 'study.json'}, {args.out / 'study.md'}, {args.out / 'study.png'}")


def _log_ladder(steps: list[int]) -> set[int]:
    """About one ladder step per doubling, plus the last: enough rows to read a curve."""
    keep, nxt = set(), 0
    for s in steps:
        if s >= nxt:
            keep.add(s)
            nxt = 2 * s
    return keep | set(steps[-1:])


if __name__ == "__main__":
    main()
