"""Train each compensation head on a frozen, trained backbone's cached features (hih.analysis.head_probe_study).

    python scripts/head_probe.py CKPT --out DIR                       # the study's heads, 3 seeds
    python scripts/head_probe.py CKPT --out DIR --heads hih_c:cls wom --seeds 0 --steps 500
    python scripts/head_probe.py --multirun MULTIRUN [MULTIRUN ...]   # the sweep's runs, over seeds
    python scripts/head_probe.py --multirun MULTIRUN ... --figure curves.png   # and their val curves

CKPT: a hih-train checkpoint whose backbone fits the composed model (--overrides, by default the
quickstart under recipe=authors_release). Writes DIR/probe.json and DIR/probe.md; the features are
cached in DIR/features and reused.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from hih.analysis.head_probe_study import multirun_markdown, multirun_table, run_study
from hih.analysis.seed_curves import seed_curves, seed_curves_figure

HEADS = ["hih_l:cls", "wom", "hih_c:cls", "hih_c:l2", "hih_t:cls", "hih_t:l2", "wov"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpt", nargs="?")
    parser.add_argument("--out")
    parser.add_argument("--multirun", nargs="+", help="summarise sweep=decimal_recipe multiruns instead")
    parser.add_argument("--figure", help="with --multirun: the runs' validation curves over seeds (a .png)")
    parser.add_argument("--chance", type=float, default=1 / 64, help="with --multirun: 1/d^2 (default d = 8)")
    parser.add_argument("--heads", nargs="+", default=HEADS, help="model[:decimal_loss] (default: %(default)s)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--features", default=None, help="cached features folder (default: OUT/features)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--overrides", nargs="*", default=["recipe=authors_release"], help="hih-train overrides")
    args = parser.parse_args()
    if args.multirun:
        print(multirun_markdown(multirun_table(args.multirun), args.chance))
        if args.figure:
            names = ", ".join(Path(m).name for m in args.multirun)
            title = f"{names}: mean over seeds (line), their min-max (band)"
            fig = seed_curves_figure(seed_curves(args.multirun), args.chance, title=title)
            fig.savefig(args.figure, dpi=110)
            print(f"wrote {args.figure}")
        return
    if not (args.ckpt and args.out):
        parser.error("CKPT and --out are required for a probe")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    summary = run_study(
        args.ckpt,
        args.heads,
        args.seeds,
        args.steps,
        args.out,
        args.overrides,
        args.lr,
        args.eval_every,
        batch_size=args.batch_size,
        features_dir=args.features,
        log=lambda line: print(line, flush=True),
    )
    for row in summary["table"]:
        print(row)
    print(f"wall time {time.perf_counter() - start:.0f} s; {args.out}/probe.md")


if __name__ == "__main__":
    main()
