"""hih-flops: compose a model, print its parameters (M) and GFLOPs (multiply-adds), write flops.json.

    hih-flops model=hih_t model.stacks=2
    hih-flops -m model=baseline,wov,wom,hih_c,hih_t

``params_m`` / ``gflops`` describe the network hih builds; ``params_m_paper`` / ``gflops_paper`` add
the weights and computation the official implementation holds unused (see hih.models.complexity),
which is how the paper's Tables 1, 5 and 6 count.
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from hih.cli._hydra import hih_main


def flops_record(cfg: DictConfig) -> dict:
    """Instantiate ``cfg.model.net`` and count it on one (1, 3, S, S) image, S = ``cfg.data.input_size``."""
    from hydra.utils import instantiate

    from hih.models.complexity import count

    net = instantiate(cfg.model.net)
    counts = count(net, int(cfg.data.input_size))
    return {
        "model": str(cfg.model.name),
        **{k: round(v, 4) for k, v in counts.items()},
        "stacks": int(cfg.model.stacks),
        "decimal_size": int(cfg.model.decimal_size) if "decimal_size" in cfg.model else None,  # HIH methods only
        "input_size": int(cfg.data.input_size),
        "num_landmarks": int(cfg.data.num_landmarks),
    }


@hih_main("flops")
def main(cfg: DictConfig) -> dict:
    record = flops_record(cfg)
    out = Path(cfg.paths.output_dir) / "flops.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(
        f"{record['model']} (stacks={record['stacks']}, decimal={record['decimal_size']}): "
        f"params {record['params_m']:.2f}M, GFLOPs {record['gflops']:.2f} | "
        f"paper convention: params {record['params_m_paper']:.2f}M, GFLOPs {record['gflops_paper']:.2f} -> {out}"
    )
    return record


if __name__ == "__main__":
    main()
