"""Learning curves, tables and a figure of a ``sweep=decimal_study`` multirun (docs/decimal_heads.md).

The runs are the sweep's (conf/sweep/decimal_study.yaml, one run per file in conf/sweep/decimal_study/);
this script only reads their folder with :mod:`hih.analysis.learning_curves` and prints the summary.

    OMP_NUM_THREADS=1 HIH_DATA_DIR=<the quickstart's faces> hih-train -m sweep=decimal_study
    python scripts/decimal_study.py outputs/train/multirun/<time>            # study.md / .json / .png there
    python scripts/decimal_study.py outputs/train/multirun/<time> --out docs/img
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hih.analysis.learning_curves import write_study


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("multirun_dir", type=Path, help="the multirun folder of hih-train -m sweep=decimal_study")
    p.add_argument(
        "--out", type=Path, default=None, help="where study.json / .md / .png go (default: the multirun folder)"
    )
    p.add_argument("--baseline", default="baseline", help="the run the integer heatmaps are compared with")
    args = p.parse_args(argv)
    result = write_study(args.multirun_dir, args.out, args.baseline)
    print(result["markdown"])
    print("wrote " + ", ".join(str(path) for path in result["paths"].values()))


if __name__ == "__main__":
    main()
