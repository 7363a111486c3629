"""The DataModule encodes the labels on the device; the LightningModule only reads them and decodes."""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from hih.codecs import HIHCodec
from hih.data.datamodule import FaceDataModule
from hih.data.targets import TARGETS_KEY, EncodedLoaders, add_targets
from hih.methods import build_net
from hih.module import FaceAlignmentModule

S, DEC = 32, 4
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "synthetic"
    FaceDataModule(dataset="synthetic", root=root, n_train=16, n_test=8, num_workers=0).prepare_data()
    return root


def _dm(root: Path, codec, **kw) -> FaceDataModule:
    kw = {"input_size": S, "batch_size": 4, "num_workers": 0, "n_train": 16, "n_test": 8, "val_fraction": 0.25, **kw}
    return FaceDataModule(dataset="synthetic", root=root, codec=codec, **kw)


def _codec(**kw) -> HIHCodec:
    return HIHCodec(S, S // 4, decimal_size=DEC, **kw)


def _assert_encoded(batch: dict, codec) -> None:
    expected = codec.encode(batch["landmarks"])
    assert set(batch[TARGETS_KEY]) == set(expected) == set(codec.target_keys)
    for key, value in expected.items():
        assert batch[TARGETS_KEY][key].device == batch["landmarks"].device, key
        assert torch.equal(batch[TARGETS_KEY][key], value), key


class Recorder(FaceAlignmentModule):
    """Keeps the batches its steps see (moved to the CPU after the checks of the device)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: dict[str, list[dict]] = {"train": [], "val": [], "test": []}

    def _keep(self, stage: str, batch: dict) -> None:
        if TARGETS_KEY in batch:
            # On the module's device, as Lightning moved the batch there: encoded after the transfer.
            assert all(t.device == self.device for t in batch[TARGETS_KEY].values())
            _assert_encoded(batch, self.codec)
        self.seen[stage].append(batch)

    def training_step(self, batch, batch_idx):
        self._keep("train", batch)
        return super().training_step(batch, batch_idx)

    def validation_step(self, batch, batch_idx):
        self._keep("val", batch)
        return super().validation_step(batch, batch_idx)

    def test_step(self, batch, batch_idx):
        self._keep("test", batch)
        return super().test_step(batch, batch_idx)


def _module(codec, cls=FaceAlignmentModule):
    torch.manual_seed(0)
    net = build_net("hih_l", 98, channels=8, input_size=S, hourglass_depth=2, decimal_size=DEC, width=8, reduced=4)
    return cls(net, codec, layout="wflw")


def _trainer(device: str = "cpu", **kw) -> L.Trainer:
    return L.Trainer(
        accelerator=device,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **kw,
    )


def test_loaders_ship_coordinates_and_the_hook_adds_the_targets(synth_root) -> None:
    codec = _codec()
    dm = _dm(synth_root, codec)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert TARGETS_KEY not in batch  # nothing is encoded in the loader (workers)
    encoded = dm.on_after_batch_transfer(batch, 0)
    _assert_encoded(encoded, codec)
    assert encoded[TARGETS_KEY]["cell"].shape == (4, 98, 2) and encoded[TARGETS_KEY]["cell"].dtype == torch.long
    # No codec, or a batch without landmarks (prediction): unchanged.
    assert _dm(synth_root, None).on_after_batch_transfer(batch, 0) is batch
    images = {"image": batch["image"]}
    assert add_targets(images, codec) is images


@pytest.mark.slow  # Trainer.fit
@pytest.mark.parametrize("device", DEVICES)
def test_training_step_sees_the_codec_targets_on_its_device(synth_root, device) -> None:
    codec = _codec()
    module = _module(codec, Recorder)
    trainer = _trainer(device, max_steps=2, val_check_interval=2, limit_val_batches=1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*num_workers.*")
        trainer.fit(module, datamodule=_dm(synth_root, codec))
        assert len(module.seen["train"]) == 2 and len(module.seen["val"]) == 1
        assert all(TARGETS_KEY in b for b in module.seen["train"] + module.seen["val"])
        # Test batches get them too (the head metric reads them) ...
        trainer.test(module, datamodule=_dm(synth_root, codec), verbose=False)
        assert module.seen["test"] and all(TARGETS_KEY in b for b in module.seen["test"])
        assert {"test/nme", "test/decimal_acc"} <= set(trainer.callback_metrics)
        # ... but evaluation works without: a DataModule without codec gives the landmark metrics alone.
        module.seen["test"].clear()
        trainer.test(module, datamodule=_dm(synth_root, None), verbose=False)
    assert module.seen["test"] and all(TARGETS_KEY not in b for b in module.seen["test"])
    assert trainer.callback_metrics["test/nme"].isfinite() and "test/decimal_acc" not in trainer.callback_metrics
    # Prediction: images only, no labels at all.
    images = DataLoader(
        TensorDataset(torch.randn(3, 3, S, S)), batch_size=2, collate_fn=lambda rows: torch.stack([r[0] for r in rows])
    )
    preds = trainer.predict(module, dataloaders=images)
    assert [p.shape for p in preds] == [(2, 98, 2), (1, 98, 2)]


@pytest.mark.slow  # Trainer.fit (setup only)
def test_a_datamodule_with_another_codec_is_refused_at_setup(synth_root) -> None:
    module = _module(_codec())
    other = _codec(sigma=2.0)
    with pytest.raises(ValueError) as info:
        _trainer(max_steps=1).fit(module, datamodule=_dm(synth_root, other))
    message = str(info.value)
    assert repr(other) in message and repr(module.codec) in message and "sigma=2.0" in message
    # An equal configuration in another object is accepted.
    module.check_codec(_dm(synth_root, _codec()))
    module.check_codec(_dm(synth_root, None))  # coordinates only: nothing to compare


def test_training_without_targets_says_how_to_get_them() -> None:
    module = _module(_codec())
    batch = {"image": torch.randn(1, 3, S, S), "landmarks": torch.rand(1, 98, 2) * S}
    with pytest.raises(KeyError, match="EncodedLoaders"):
        module.training_step(batch, 0)


@pytest.mark.slow  # Trainer.fit
def test_encoded_loaders_train_on_plain_dataloaders() -> None:
    codec = _codec()
    module = _module(codec, Recorder)
    data = [
        {
            "image": torch.randn(3, S, S),
            "landmarks": torch.rand(98, 2) * S,
            "subsets": torch.zeros(6, dtype=torch.bool),
            "index": torch.tensor(i),
        }
        for i in range(4)
    ]
    loader = DataLoader(data, batch_size=2)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*num_workers.*")
        _trainer(max_steps=2, limit_val_batches=1, val_check_interval=2).fit(
            module, datamodule=EncodedLoaders(codec, train=loader, val=loader)
        )
    assert len(module.seen["train"]) == 2 and len(module.seen["val"]) == 1


def test_configs_give_both_sides_the_model_codec() -> None:
    from hydra.utils import instantiate

    from hih.pipeline import compose

    cfg = compose("train", ["model.codec.sigma=2.0"], output_dir="unused")
    dm = instantiate(cfg.data.datamodule, _convert_="all")
    model_codec = instantiate(cfg.model.codec)
    assert dm.codec.sigma == 2.0 and dm.codec.config() == model_codec.config()
    assert "codec" not in dm.hparams  # checkpoints hold plain types only
    # No model in the config (hih-quantization): coordinates only.
    assert instantiate(compose("quantization", output_dir="unused").data.datamodule, _convert_="all").codec is None


def test_the_module_never_encodes() -> None:
    import hih.module

    assert "encode(" not in Path(hih.module.__file__).read_text()
