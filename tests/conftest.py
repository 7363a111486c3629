"""Suite-wide test settings: tiny CPU work is fastest on one thread per pytest worker."""

import os

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def one_thread():
    """Back to one thread after a test that changed it (tiny convolutions: thread hand-offs dominate)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
