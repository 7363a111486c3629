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

Writes ``study.json`` (every curve, the test metrics, wall times), ``study.md`` (a summary on the
test set, then the validation ladder) and ``study.png`` (the curves) into ``--out``. Finished runs
(their ``metrics.json`` exists) are not trained again, so an interrupted study resumes where it
stopped. Results and reading: docs/decimal_heads.md ("Do the paper's heads learn?").

    HIH_DATA_DIR=<the quickstart's faces> python scripts/decimal_study.py --out outputs/decimal_study
    python scripts/decimal_study.py --runs "hih_c=model=hih_c" "hih_c_w05=model=hih_c model.loss.head=0.05"
    python scripts/decimal_study.py --out outputs/decimal_study --report-only   # table + figure again
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

#: Small enough that a run reaches about a thousand optimizer steps in minutes on a shared 2-core
#: machine: 64 px input, a 16x16 heatmap (stride 4 as in the paper), a 4x4 decimal map (HIH), a
#: 32-channel hourglass, batch 16. Constant learning rate (the quickstart's AdamW 2e-3), so that every
#: validation point is what a shorter budget would have reached.
COMMON = [
    "data.input_size=64",
    "data.heatmap_size=16",
    "data.datamodule.batch_size=16",
    "model.channels=32",
    "module.scheduler=null",
    "trainer.max_epochs=-1",
    "trainer.check_val_every_n_epoch=null",
    "trainer.log_every_n_steps=10",
    "plot_samples=0",
    "logger=csv",
    # One loader worker kept alive across the frequent validations (a fresh worker costs seconds).
    "data.datamodule.num_workers=1",
    "data.datamodule.persistent_workers=true",
]

#: One compute thread per run: on a shared 2-core machine two threads fight the other jobs and ran
#: 10x slower per step than one (measured: 2.3 s against 0.19 s per step at load 15).
THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

#: Only methods with a decimal map (an HIH codec) take these.
DECIMAL = ["model.decimal_size=4"]

#: The paper's label settings (issue 12): the integer Gaussian centred on cell floor(u) (every heatmap
#: codec), and for the HIH codecs the rounded decimal index.
PAPER_LABELS = ["++model.codec.integer_target=cell"]
PAPER_DECIMAL_LABELS = ["++model.codec.decimal_quantizer=round"]

#: The study (docs/decimal_heads.md), in the order it runs. ``_w<x>``: the head's loss weight
#: (model.loss.head) set explicitly, so the runs do not depend on the configs' defaults. HIH_CP is
#: an extension (hih.methods.hih_cp), not a paper head.
DEFAULT_RUNS = {
    "baseline": "model=baseline",
    "hih_c_w1": "model=hih_c model.loss.head=1.0",
    "hih_cp_mean_w1": "model=hih_cp model.loss.head=1.0 model.net.pool=mean model.net.teacher_sigma=null model.net.cell_at_inference=false",
    "hih_l": "model=hih_l",
    "wov_w1": "model=wov model.loss.head=1.0",
    "wov_w0.05": "model=wov model.loss.head=0.05",
    "wom_w1": "model=wom model.loss.head=1.0",
    "wom_w0.05": "model=wom model.loss.head=0.05",
    "hih_c_w0.05": "model=hih_c model.loss.head=0.05",
    "hih_t_w0.05": "model=hih_t model.loss.head=0.05",
    "hih_cp_w1": "model=hih_cp model.loss.head=1.0 model.net.teacher_sigma=null model.net.cell_at_inference=false",
    "hih_t_w1": "model=hih_t model.loss.head=1.0",
    # The extension with teacher forcing: training pools around the ground-truth cell, as HIH_L / WOM read there.
    "hih_cp_tf_w1": "model=hih_cp model.loss.head=1.0 model.net.teacher_sigma=1.5 model.net.cell_at_inference=false",
    # ... and at inference the same Gaussian on the argmax cell (training and test pool alike).
    "hih_cp_cell_w1": "model=hih_cp model.loss.head=1.0 model.net.teacher_sigma=1.5 model.net.cell_at_inference=true",
    # The run-to-run spread of the reference: how large a difference in NME is noise.
    "baseline_seed1": "model=baseline seed=1",
    "baseline_seed2": "model=baseline seed=2",
    # Longer ladders for the paper's CNN head and the extension (a run's own trainer.max_steps
    # replaces --steps; same seed, so their first 1000 steps are those of the runs above).
    "hih_cp_w1_3000": "model=hih_cp model.loss.head=1.0 model.net.teacher_sigma=null model.net.cell_at_inference=false trainer.max_steps=3000",
    "hih_c_w1_6000": "model=hih_c model.loss.head=1.0 trainer.max_steps=6000",
    "hih_cp_cell_w1_3000": "model=hih_cp model.loss.head=1.0 model.net.teacher_sigma=1.5 model.net.cell_at_inference=true trainer.max_steps=3000",
}

#: offset_err (Euclidean, cells) of a head that always predicts the mean offset (0.5, 0.5): the mean
#: distance from the centre of the unit square to a uniform point, (sqrt(2) + asinh(1)) / 6.
MEAN_OFFSET_ERR = (math.sqrt(2) + math.asinh(1)) / 6

CURVES = ("val/nme", "val/nme_integer", "val/decimal_acc", "val/decimal_gain", "val/offset_err", "val/offset_gain")


def parse_runs(specs: list[str] | None) -> dict[str, list[str]]:
    """``name=override override ...`` -> {name: [overrides]} (default: :data:`DEFAULT_RUNS`)."""
    items = dict(s.split("=", 1) for s in specs) if specs else DEFAULT_RUNS
    return {name: spec.split() for name, spec in items.items()}


def model_name(overrides: list[str]) -> str:
    """The ``model=<name>`` of a run's overrides (the quickstart's hih_l when absent)."""
    names = [o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].lstrip("+~") == "model"]
    return names[-1] if names else "hih_l"


def has_decimal_map(model: str) -> bool:
    """Whether the registered method ``model`` decodes a decimal heatmap (takes decimal_size / quantizer)."""
    from hih.codecs import HIHCodec
    from hih.methods import get_method

    return issubclass(get_method(model).codec, HIHCodec)


def method_overrides(overrides: list[str], labels: str) -> list[str]:
    """The per-method part of COMMON: the decimal size and, with ``labels="paper"``, the label options
    each codec accepts (decimal_quantizer exists only on HIH codecs)."""
    decimal = has_decimal_map(model_name(overrides))
    out = DECIMAL if decimal else []
    if labels == "paper":
        out = out + PAPER_LABELS + (PAPER_DECIMAL_LABELS if decimal else [])
    return out


def train(name: str, overrides: list[str], args) -> Path | None:
    """One ``hih-train`` run in ``--out/runs/<name>``; None (and the study goes on) when it fails."""
    run_dir = args.out / "runs" / name
    if (run_dir / "metrics.json").is_file():
        print(f"[study] {name}: done already ({run_dir})", flush=True)
        return run_dir
    cmd = [
        sys.executable, "-m", "hih.cli.train", *COMMON, *method_overrides(overrides, args.labels),
        f"++trainer.val_check_interval={args.val_every}", *overrides, *args.extra, f"hydra.run.dir={run_dir}",
    ]
    if not any(o.startswith("seed=") for o in overrides):
        cmd.insert(cmd.index(f"++trainer.val_check_interval={args.val_every}") + 1, f"seed={args.seed}")
    steps = [o for o in overrides if o.lstrip("+").startswith("trainer.max_steps=")]
    if steps:  # the run's own budget
        cmd = [c if c not in steps else "++" + c.lstrip("+") for c in cmd]
    else:
        cmd.insert(cmd.index(f"++trainer.val_check_interval={args.val_every}"), f"++trainer.max_steps={args.steps}")
    print(f"[study] {name}: hih-train {' '.join(cmd[3:])}", flush=True)
    t0 = time.perf_counter()
    log = run_dir.parent / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        rc = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "MPLBACKEND": "Agg", **THREADS})
    seconds = time.perf_counter() - t0
    if rc:
        print(f"[study] {name} FAILED (exit {rc}) after {seconds:.0f} s; see {log}", flush=True)
        return None
    (run_dir / "study_run.json").write_text(json.dumps({"command": cmd[3:], "wall_s": round(seconds, 1)}, indent=1))
    print(f"[study] {name}: {seconds:.0f} s", flush=True)
    return run_dir


def read_curves(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """{metric: [(optimizer steps, value), ...]} for the validation metrics of one run's CSV log.

    The CSV's ``step`` of a validation row is the optimizer steps done minus one (Lightning logs it
    from the last training batch), hence the +1."""
    out: dict[str, list[tuple[int, float]]] = {}
    with open(run_dir / "csv" / "metrics.csv") as fh:
        for row in csv.DictReader(fh):
            for key in CURVES:
                value = row.get(key, "")
                if value not in ("", None):
                    out.setdefault(key, []).append((int(row["step"]) + 1, float(value)))
    return out


def read_test(run_dir: Path) -> dict[str, float]:
    """The run's final test metrics (best checkpoint by val/nme, the 500 test faces), full set only."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {k: v for k, v in metrics.items() if k.count("/") == 1}


def decimal_chance(run_dir: Path) -> float | None:
    cfg = run_dir / ".hydra" / "config.yaml"
    if not cfg.is_file():
        return None
    from omegaconf import OmegaConf

    model = OmegaConf.load(cfg).model
    return 1.0 / int(model.decimal_size) ** 2 if "decimal_size" in model else None


def _fmt(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def _last(points: list[tuple[int, float]] | None, step: int) -> float | None:
    vals = [v for s, v in points or [] if s <= step]
    return vals[-1] if vals else None


def table(curves: dict[str, dict], steps: list[int], tests: dict[str, dict], baseline: str | None) -> str:
    """Markdown: one row per run and ladder step (validation set), then the run's test row.

    "vs baseline": integer-heatmap-only NME minus the baseline's NME at the same step (> 0: the head
    made the shared backbone's integer heatmap worse)."""
    head = ("| run | steps | NME | integer only | vs baseline | decimal acc | gain (NME) | offset err (cells) |\n"
            "|---|---|---|---|---|---|---|---|")
    rows = [head]
    base = curves.get(baseline, {}).get("val/nme") if baseline else None
    for name, c in curves.items():
        gain_key = "val/decimal_gain" if c.get("val/decimal_gain") else "val/offset_gain"
        last_step = max((s for pts in c.values() for s, _ in pts), default=0)
        for step in [s for s in steps if s <= last_step]:  # a shorter run has no row past its end
            integer, ref = _last(c.get("val/nme_integer"), step), _last(base, step)
            delta = f"{integer - ref:+.3f}" if integer is not None and ref is not None else "-"
            rows.append(f"| {name} | {step} | {_fmt(_last(c.get('val/nme'), step))} | {_fmt(integer)} | {delta} | "
                        f"{_fmt(_last(c.get('val/decimal_acc'), step))} | {_fmt(_last(c.get(gain_key), step))} | "
                        f"{_fmt(_last(c.get('val/offset_err'), step))} |")
        t = tests.get(name)
        if t:
            integer, ref = t.get("test/nme_integer"), tests.get(baseline, {}).get("test/nme") if baseline else None
            delta = f"{integer - ref:+.3f}" if integer is not None and ref is not None else "-"
            gain = t.get("test/decimal_gain", t.get("test/offset_gain"))
            rows.append(f"| {name} | **test** | {_fmt(t.get('test/nme'))} | {_fmt(integer)} | {delta} | "
                        f"{_fmt(t.get('test/decimal_acc'))} | {_fmt(gain)} | {_fmt(t.get('test/offset_err'))} |")
    return "\n".join(rows)


def summary_table(runs: dict[str, list[str]], curves: dict[str, dict], tests: dict[str, dict], chance: float | None,
                  baseline: str | None, wall: dict[str, float]) -> str:
    """Markdown: one row per run, the test set (500 faces, best checkpoint by val NME) and when the
    head first reached 5x chance on the validation set."""
    rows = ["| run | head loss weight | test NME | integer only | vs baseline | decimal acc (x chance) | offset err (cells) "
            "| gain (NME) | val decimal acc >= 5x chance at step | wall (s) |", "|---|---|---|---|---|---|---|---|---|---|"]
    ref = tests.get(baseline, {}).get("test/nme") if baseline else None
    for name, t in tests.items():
        weight = "-" if baseline and name.startswith(baseline) else next((o.split("=", 1)[1] for o in runs.get(name, []) if o.startswith("model.loss.head=")), "config")
        integer = t.get("test/nme_integer")
        delta = f"{integer - ref:+.3f}" if integer is not None and ref is not None else "-"
        acc = t.get("test/decimal_acc")
        acc_s = f"{acc:.3f} ({acc / chance:.1f}x)" if acc is not None and chance else "-"
        gain = t.get("test/decimal_gain", t.get("test/offset_gain"))
        first = "-"
        if curves.get(name, {}).get("val/decimal_acc") and chance:
            first = next((str(s) for s, v in curves[name]["val/decimal_acc"] if v >= 5 * chance), "never")
        rows.append(f"| {name} | {weight} | {_fmt(t.get('test/nme'))} | {_fmt(integer)} | {delta} | {acc_s} | "
                    f"{_fmt(t.get('test/offset_err'))} | {_fmt(gain)} | {first} | {wall.get(name, '-')} |")
    return "\n".join(rows)


def plot(curves: dict[str, dict], chance: float | None, path: Path, baseline: str | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("val/decimal_acc", "decimal-cell accuracy (HIH heads)"),
              ("val/offset_err", "offset error, cells (WOV / WOM)"),
              ("val/decimal_gain", "gain over the cell centre (NME)"),
              ("val/nme_integer", "integer heatmap alone (NME); baseline: its NME")]
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    axes = axes.flatten()
    # Other seeds of the baseline ("<baseline>_seed*") are drawn as the band of its run-to-run spread.
    seeds = [n for n in curves if baseline and (n == baseline or n.startswith(f"{baseline}_seed"))]
    lines = {n: c for n, c in curves.items() if n not in seeds[1:] and not (baseline and n.startswith(f"{baseline}_seed"))}
    cmap = plt.get_cmap("tab20")
    colors = {name: cmap(i % 20) for i, name in enumerate(lines)}
    for ax, (key, title) in zip(axes, panels):
        if key == "val/nme_integer" and len(seeds) > 1:
            per_step: dict[int, list[float]] = {}
            for n in seeds:
                for s, v in curves[n].get("val/nme", []):
                    per_step.setdefault(s, []).append(v)
            xs = sorted(s for s, v in per_step.items() if len(v) == len(seeds))
            ax.fill_between(xs, [min(per_step[s]) for s in xs], [max(per_step[s]) for s in xs], color="grey", alpha=0.25,
                            label=f"baseline, {len(seeds)} seeds (min-max)")
        for name, c in lines.items():
            pts = c.get(key)
            if key == "val/decimal_gain" and not pts:
                pts = c.get("val/offset_gain")
            if key == "val/nme_integer" and not pts and name == baseline:
                pts = c.get("val/nme")
            if pts:
                style = {"ls": "--"} if "_w1" in name or name == baseline else {}
                ax.plot([s for s, _ in pts], [v for _, v in pts], marker="o", ms=3, label=name, color=colors[name], **style)
        if key == "val/decimal_acc" and chance:
            d = round(math.sqrt(1 / chance))
            ax.axhline(chance, color="k", ls=":", lw=1, label=f"chance 1/{d * d}")
            ax.axhline(5 * chance, color="grey", ls=":", lw=1, label="5x chance")
        if key == "val/offset_err":
            ax.axhline(MEAN_OFFSET_ERR, color="k", ls=":", lw=1, label=f"always (0.5, 0.5): {MEAN_OFFSET_ERR:.3f}")
        if key == "val/decimal_gain":
            ax.axhline(0.0, color="k", ls=":", lw=1)
        if key == "val/nme_integer" and baseline and curves[baseline].get("val/nme"):
            ax.set_ylim(top=2.5 * curves[baseline]["val/nme"][-1][1])  # the late steps, where heads differ
        ax.set_xscale("log")
        ax.set_xlabel("optimizer steps")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("outputs/decimal_study"))
    p.add_argument("--runs", nargs="*", help='"name=override override ..." (default: the study\'s runs, DEFAULT_RUNS)')
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--val-every", type=int, default=100)
    p.add_argument("--labels", choices=("paper", "config"), default="paper",
                   help="paper: the authors' label settings; config: whatever the composed config says")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--extra", nargs="*", default=[], help="overrides added to every run")
    p.add_argument("--baseline", default="baseline", help="the run the integer heatmaps are compared with")
    p.add_argument("--report-only", action="store_true", help="do not train; tabulate the runs found in --out")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    runs = parse_runs(args.runs)
    labels = "paper label settings (" + " ".join(PAPER_LABELS + PAPER_DECIMAL_LABELS) + "; quantizer for HIH only)" \
        if args.labels == "paper" else "the configs' label settings"
    if not args.report_only:
        print(f"[study] {len(runs)} runs, {args.steps} steps, validation every {args.val_every}; {labels}", flush=True)
    dirs = {}
    for name, overrides in runs.items():
        run_dir = args.out / "runs" / name
        dirs[name] = run_dir if args.report_only else train(name, overrides, args)
    done = {n: d for n, d in dirs.items() if d is not None and (d / "csv" / "metrics.csv").is_file()}
    curves = {n: read_curves(d) for n, d in done.items()}
    tests = {n: read_test(d) for n, d in done.items() if (d / "metrics.json").is_file()}
    wall = {n: json.loads((d / "study_run.json").read_text())["wall_s"] for n, d in done.items() if (d / "study_run.json").is_file()}
    chance = next((c for c in (decimal_chance(d) for d in done.values()) if c), None)
    baseline = args.baseline if args.baseline in curves else None
    ladder = sorted({s for c in curves.values() for pts in c.values() for s, _ in pts})
    shown = [s for s in ladder if s in _log_ladder(ladder)]
    summary = {"runs": {n: " ".join(o) for n, o in runs.items()}, "common": COMMON, "labels": labels, "steps": args.steps,
               "val_every": args.val_every, "chance": chance, "wall_s": wall, "wall_s_total": round(sum(wall.values()), 1),
               "test": tests, "curves": curves}
    (args.out / "study.json").write_text(json.dumps(summary, indent=1))
    chance_s = f"1/{round(1 / chance)}" if chance else "-"
    md = (f"Validation set (100 faces held out of train) at each ladder step, then the test set (500 faces, best "
          f"checkpoint by val NME). {labels}; chance decimal acc {chance_s}; wall time {sum(wall.values()) / 60:.0f} min.\n\n"
          + summary_table(runs, curves, tests, chance, baseline, wall) + "\n\nValidation curves (ladder):\n\n"
          + table(curves, shown, tests, baseline))
    (args.out / "study.md").write_text(md + "\n")
    plot(curves, chance, args.out / "study.png", baseline)
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
