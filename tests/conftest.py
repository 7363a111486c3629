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


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """The tiny synthetic set of ``debug=tiny_run`` (tests/tiny.py), made once per pytest worker, serially
    (workers=1: no process pool next to threaded tests); pass it as ``paths.data_dir``."""
    from hih.data.synthetic import ensure_synthetic
    from tiny import N_TEST, N_TRAIN

    root = tmp_path_factory.mktemp("faces")
    ensure_synthetic(root / "synthetic", n_train=N_TRAIN, n_test=N_TEST, workers=1, progress=False)
    return root
