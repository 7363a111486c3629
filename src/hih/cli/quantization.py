"""hih-quantization: the ideal-condition NME table, quantization.json and a bar chart."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from hih.cli._hydra import hih_main


@hih_main("quantization")
def main(cfg: DictConfig) -> None:
    from hydra.utils import instantiate

    from hih.analysis.quantization import analyse, method_variants, plot_bars, print_table, table8_ratios

    datamodule = instantiate(cfg.data.datamodule, _convert_="all")
    datamodule.prepare_data()  # writes the synthetic faces on first use
    layout = datamodule.layout
    records = datamodule.read_split(cfg.split)
    # Every registered method (hih.methods), each codec built by the registry.
    methods = method_variants(
        cfg.data.input_size, cfg.data.heatmap_size, list(cfg.decimal_sizes), cfg.sigma, cfg.decimal_sigma
    )
    rows = analyse(
        records, layout.norm_pair, methods, cfg.data.input_size, datamodule.crop_scale, crop_from=datamodule.crop_from
    )
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "quantization.json").write_text(json.dumps(rows, indent=2) + "\n")
    title = (
        f"Ideal-condition NME (%) on {cfg.data.name} {cfg.split} ({len(records)} faces, {cfg.data.input_size} input)"
    )
    print_table(rows, title)
    plot_bars(rows, out / "quantization.png", title)
    # Paper Table 8 "Ideal": 0.420 / 0.182 / 0.091, ratios 2.31 and 2.00 (integer target cell, round, float labels).
    for settings in (("cell", "round"), ("subpixel", "floor")):
        ratios = table8_ratios(rows, "float", *settings)
        print(
            f"HIH corner decode, {settings[0]} / {settings[1]}, float labels: "
            + ", ".join(f"{k} = {v:.2f}" for k, v in ratios.items())
        )
    print(f"wrote {out / 'quantization.json'} and {out / 'quantization.png'}")


if __name__ == "__main__":
    main()
