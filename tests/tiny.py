"""Shared overrides for end-to-end runs that take seconds on the CPU."""

N_TRAIN, N_TEST = 24, 12  # tiny() and a pre-made set must agree, or the run regenerates it


def tiny(data_dir, *extra: str) -> list[str]:
    """Overrides for a run of a few seconds on the CPU: 24/12 faces at 64 px, 16-channel nets, one epoch."""
    return [
        f"paths.data_dir={data_dir}",
        "data.input_size=64",
        "data.heatmap_size=16",
        f"data.datamodule.n_train={N_TRAIN}",
        f"data.datamodule.n_test={N_TEST}",
        "data.datamodule.batch_size=8",
        "data.datamodule.num_workers=0",
        "model.channels=16",
        "model.head_width=16",
        "trainer.max_epochs=1",
        "trainer.log_every_n_steps=1",
        "plot_samples=2",
        *extra,
    ]
