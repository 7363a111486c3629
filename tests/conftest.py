"""Suite-wide test settings: tiny CPU work is fastest on one thread per pytest worker."""

import os

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(1)
