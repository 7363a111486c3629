"""FaceAlignmentModule with tiny real nets and the real codecs: fit + test through a Lightning Trainer."""

from __future__ import annotations

import functools
import math
import warnings

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset

from hih.codecs import HeatmapCodec, HIHCodec
from hih.data.targets import EncodedLoaders
from hih.evaluation import redecoders
from hih.methods import build_codec, build_net, codec_parameters, get_method, method_names
from hih.models import ModelOutput
from hih.module import FaceAlignmentModule
from hih.optim import cosine, onecycle, step_decay

N, S, DEC = 5, 64, 4  # landmarks, input size (heatmap 16), decimal size
SUBSETS = ("pose", "blur")
TINY = {"channels": 16, "input_size": S, "hourglass_depth": 2, "decimal_size": DEC}
#: Tiny widths of the heads that take more than a width; any other head (a new method's) gets ``width``.
HEAD_KWARGS = {
    "hih_t": {"embed_dim": 16, "depth": 1, "num_heads": 2, "mlp_ratio": 2.0, "regression_width": 16},
    "hih_l": {"width": 16, "reduced": 4},
    "hih_cp": {"width": 16, "pool_width": 16},
}
METHODS = method_names()  # every registered method, a new one included


def _head(method: str) -> str:
    """The ``build_net`` head of ``method``: its own, or "none" for a heatmap-only method."""
    return method if get_method(method).head is not None else "none"


def _codec(method: str):
    """``method``'s codec as the registry builds it, at the tiny sizes."""
    sizes = {"input_size": S, "heatmap_size": S // 4, "decimal_size": DEC}
    return build_codec(method, **{k: v for k, v in sizes.items() if k in codec_parameters(method)})


def _net(method: str, num_landmarks: int = N, **kwargs):
    head = _head(method)
    widths = {} if head == "none" else HEAD_KWARGS.get(head, {"width": 16})
    return build_net(head=head, num_landmarks=num_landmarks, **TINY, **widths, **kwargs)


class RandomFaces(Dataset):
    """Random images with random landmarks inside the input, in the DataModule's batch format."""

    def __init__(self, size: int = 4, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randn(size, 3, S, S, generator=g)
        self.landmarks = torch.rand(size, N, 2, generator=g) * (S - 16) + 8
        self.subsets = torch.rand(size, len(SUBSETS), generator=g) > 0.5

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "image": self.images[i],
            "landmarks": self.landmarks[i],
            "subsets": self.subsets[i],
            "index": torch.tensor(i),
        }


def _loader(size: int = 4, batch_size: int = 2, seed: int = 0) -> DataLoader:
    return DataLoader(RandomFaces(size, seed), batch_size=batch_size, shuffle=False)


def _fit(trainer: L.Trainer, module: FaceAlignmentModule, train: DataLoader, val: DataLoader | None = None) -> None:
    """Fit on plain loaders; EncodedLoaders adds the codec's targets on the device as FaceDataModule does."""
    trainer.fit(module, datamodule=EncodedLoaders(module.codec, train=train, val=val))


def _module(method: str, **kwargs) -> FaceAlignmentModule:
    torch.manual_seed(0)
    net = _net(method, stacks=kwargs.pop("stacks", 1))
    kwargs.setdefault("norm_pair", (0, 1))
    kwargs.setdefault("subset_names", SUBSETS)
    kwargs.setdefault("optimizer", functools.partial(torch.optim.Adam, lr=1e-3))
    return FaceAlignmentModule(net, _codec(method), **kwargs)


def _trainer(**kwargs) -> L.Trainer:
    defaults = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    return L.Trainer(**{**defaults, **kwargs})


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # On shared, busy cores OpenMP's spinning threads make these tiny convs 10-100x slower than one thread.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        # Lightning's advice about DataLoader workers and tiny datasets is noise here.
        warnings.filterwarnings("ignore", message=".*num_workers.*")
        warnings.filterwarnings("ignore", message=".*log_every_n_steps.*")
        yield


def _metric_keys(prefix: str, suffix: str = "") -> set[str]:
    return {f"{prefix}/{m}{suffix}{s}" for m in ("nme", "fr_10", "auc_10") for s in ("", "/pose", "/blur")}


@pytest.mark.slow  # Trainer.fit
@pytest.mark.parametrize("method", METHODS)
def test_fit_and_test_log_expected_keys(method):
    _fit_and_test_log_expected_keys(method)


def _fit_and_test_log_expected_keys(method: str) -> None:
    module = _module(method, stacks=2 if method == "hih_c" else 1)
    trainer = _trainer(fast_dev_run=True)
    _fit(trainer, module, _loader(), _loader(seed=1))
    logged = set(trainer.callback_metrics)
    head_key = module.codec.head_key
    assert {"train/loss", "train/heatmap", "val/nme", "val/fr_10", "val/auc_10", "val/loss"} <= logged
    assert (f"train/{head_key}" in logged) == (head_key is not None)
    head_metric = module.test_evaluator.head_metric  # from the registry: decimal_acc / offset_err
    assert (head_metric is None) == (head_key is None)
    if head_metric is not None:
        assert {
            f"train/{head_metric.name}",
            f"val/{head_metric.name}",
            "val/nme_integer",
            f"val/{head_metric.gain}",
        } <= logged
    assert all(math.isfinite(trainer.callback_metrics[k].item()) for k in ("train/loss", "val/nme"))

    results = trainer.test(module, datamodule=EncodedLoaders(module.codec, test=_loader(seed=2)), verbose=False)[0]
    expected = _metric_keys("test")
    if head_key is not None:  # paper Table 7: the integer heatmap alone
        expected |= _metric_keys("test", "_integer")
        expected |= _metric_keys("test", "_integer_corner")  # the paper's Table 7 convention
        expected |= {f"test/{m}{s}" for m in (head_metric.name, head_metric.gain) for s in ("", "/pose", "/blur")}
    for name in redecoders(module.codec):  # the same network read by every other decoder of the registry
        parts = [k.split("/") for k in _metric_keys("test")]
        expected |= {"/".join([p[0], f"{p[1]}@{name}", *p[2:]]) for p in parts}
    assert (head_key is None) == bool(redecoders(module.codec))  # plain heatmaps have re-decodes, heads none
    assert set(results) == expected
    # fast_dev_run tests one batch of 2 faces; the kept per-face results match the logged NME.
    kept = module.test_results
    assert kept.errors.shape == (2,)
    assert kept.predictions.shape == (2, N, 2) and kept.targets.shape == (2, N, 2)
    assert kept.indices.tolist() == [0, 1]
    assert results["test/nme"] == pytest.approx(kept.errors.mean().item(), rel=1e-5)
    by_subset = module.test_errors_by_subset()
    assert list(by_subset) == ["full", *SUBSETS]
    pose = kept.subsets[:, 0]
    assert by_subset["pose"].tolist() == pytest.approx(kept.errors[pose].tolist())
    if pose.any():
        assert results["test/nme/pose"] == pytest.approx(float(by_subset["pose"].mean()), rel=1e-5)

    preds = trainer.predict(module, dataloaders=_loader(seed=3))
    assert preds[0].shape == (2, N, 2)


@pytest.fixture
def throwaway_methods():
    """Two methods registered here and nowhere in the suite's code: a decimal head trained as HIH_C's,
    and a heatmap decoder (soft-argmax at another temperature) that re-decodes the plain heatmaps."""
    from hih.codecs import HeatmapCodec as Heatmap
    from hih.methods import Method, _registry, register

    hih_c = get_method("hih_c")
    head = Method(
        "zz_decimal",
        hih_c.codec,
        head=hih_c.head,
        output_key=hih_c.output_key,
        loss=hih_c.loss,
        head_is_heatmap=True,
        head_metric=hih_c.head_metric,
    )
    decoder = Method("zz_soft", Heatmap, {"decoder": "soft_argmax", "beta": 2.5})
    for method in (head, decoder):
        register(method)
    try:
        yield head.name, decoder.name
    finally:
        for method in (head, decoder):
            _registry._REGISTRY.pop(method.name, None)


@pytest.mark.slow  # Trainer.fit
def test_a_throwaway_method_trains_tests_and_redecodes(throwaway_methods):
    head, decoder = throwaway_methods
    assert {head, decoder} <= set(method_names())
    _fit_and_test_log_expected_keys(head)  # decimal_acc / decimal_gain and the integer-only keys, as HIH_C
    module = _module("baseline")
    assert decoder in module.test_evaluator.redecoders  # the baseline's heatmaps under the new decoder too
    batch = next(iter(_loader()))
    module.test_evaluator.per_face.reset()
    with torch.no_grad():
        module.test_evaluator.update(module(batch["image"]), batch["landmarks"], None, batch["subsets"])
    values = module.test_evaluator.compute()
    assert {f"test/{m}@{decoder}{s}" for m in ("nme", "fr_10", "auc_10") for s in ("", "/pose", "/blur")} <= set(values)


def test_test_metrics_match_hand_computation():
    """A net that outputs the encoded ground truth: NME equals the codec's own ideal-condition error."""
    module = _module("hih_c")
    codec = module.codec
    data = RandomFaces(4, seed=5)

    class Oracle(torch.nn.Module):
        head_key = "decimal"
        input_size = S

        def __init__(self):
            super().__init__()
            self.dummy = torch.nn.Parameter(torch.zeros(()))
            self.landmarks = None

        def forward(self, image):
            t = codec.encode(self.landmarks)
            return ModelOutput([t["heatmap"] + 0 * self.dummy], t["decimal"], "decimal")

    oracle = Oracle()
    module.net = oracle
    batch = {"image": data.images, "landmarks": data.landmarks, "subsets": data.subsets, "index": torch.arange(4)}
    oracle.landmarks = data.landmarks
    module.on_test_epoch_start()
    module.test_step(batch, 0)
    pred = codec.decode(oracle(batch["image"]).for_codec())
    d = (data.landmarks[:, 0] - data.landmarks[:, 1]).norm(dim=-1)
    expected = (pred - data.landmarks).norm(dim=-1).mean(-1) / d * 100
    values = module.test_evaluator.compute()
    assert values["test/nme"].item() == pytest.approx(expected.mean().item(), rel=1e-5)
    # Integer-only decoding: the argmax cell's centre, at most half a cell diagonal (stride / sqrt 2) away.
    integer = codec.decode_integer(oracle(batch["image"]).heatmaps[-1], anchor="centre")
    assert ((integer - data.landmarks).norm(dim=-1) <= codec.stride / math.sqrt(2) + 1e-4).all()
    expected_int = ((integer - data.landmarks).norm(dim=-1).mean(-1) / d * 100).mean()
    assert values["test/nme_integer"].item() == pytest.approx(expected_int.item(), rel=1e-5)


class _RecordLoss(L.Callback):
    def __init__(self):
        self.losses: list[float] = []
        self.lrs: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))


@pytest.mark.slow  # Trainer.fit
def test_loss_falls_on_a_fixed_batch():
    module = _module("hih_c", optimizer=functools.partial(torch.optim.AdamW, lr=3e-3, weight_decay=1e-4))
    rec = _RecordLoss()
    trainer = _trainer(max_steps=20, limit_val_batches=0, callbacks=[rec])
    _fit(trainer, module, _loader(size=2, batch_size=2))
    assert len(rec.losses) == 20
    assert rec.losses[-1] < 0.5 * rec.losses[0], rec.losses


@pytest.mark.slow  # Trainer.fit
def test_step_schedule_with_warmup_counts_epochs():
    module = _module("baseline", scheduler=functools.partial(step_decay, step_size=2, gamma=0.1, warmup_steps=2))
    rec = _RecordLoss()
    trainer = _trainer(max_epochs=5, limit_val_batches=0, callbacks=[rec])
    _fit(trainer, module, _loader(size=4, batch_size=2))  # 2 steps per epoch
    lr = 1e-3
    expected = [lr * 0.5, lr, lr, lr, lr * 0.1, lr * 0.1, lr * 0.1, lr * 0.1, lr * 0.01, lr * 0.01]
    assert rec.lrs == pytest.approx(expected)


@pytest.mark.slow  # Trainer.fit
@pytest.mark.parametrize("kind", ["cosine", "onecycle"])
def test_cosine_and_onecycle_schedules(kind):
    factory = functools.partial(cosine, warmup_steps=1) if kind == "cosine" else onecycle
    module = _module("baseline", scheduler=factory)
    rec = _RecordLoss()
    trainer = _trainer(max_steps=4, limit_val_batches=0, callbacks=[rec])
    _fit(trainer, module, _loader(size=4, batch_size=2))
    assert len(rec.lrs) == 4 and max(rec.lrs) <= 1e-3 + 1e-12
    if kind == "cosine":
        assert rec.lrs[1] == pytest.approx(1e-3) and rec.lrs[1] > rec.lrs[2] > rec.lrs[3]


@pytest.mark.slow  # Trainer.fit
def test_layout_hydra_configs_and_checkpoint(tmp_path):
    make_codec = functools.partial(_codec, "hih_c")
    net = _net("hih_c", num_landmarks=98)
    cfg = OmegaConf.create(
        {
            "loss_weights": {"heatmap": 1.0, "head": 0.5, "decimal_loss": "kl"},
            "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-4},
            "scheduler": None,
        }
    )
    module = FaceAlignmentModule(
        net, make_codec(), layout="wflw", loss=cfg.loss_weights, optimizer=cfg.optimizer, scheduler=cfg.scheduler
    )
    assert module.norm_pair == (60, 72) and module.subset_names[0] == "pose" and len(module.subset_names) == 6
    from hih.data.datasets import get_layout

    by_object = FaceAlignmentModule(net, make_codec(), layout=get_layout("wflw"), norm="pupil")
    assert by_object.norm_pair == (96, 97) and by_object.hparams["layout"] == "wflw"
    assert module.loss_weights["decimal_loss"] == "kl" and module.loss_weights["head"] == 0.5
    assert type(module.hparams["optimizer"]) is dict  # plain containers: checkpoints load with weights_only

    # A real Lightning checkpoint of a run configured through OmegaConf loads with weights_only=True.
    small = _module(
        "hih_c",
        loss=cfg.loss_weights,
        optimizer=cfg.optimizer,
        scheduler=OmegaConf.create(
            {"_target_": "hih.optim.step_decay", "_partial_": True, "step_size": 1, "gamma": 0.5}
        ),
    )
    trainer = _trainer(max_steps=1, limit_val_batches=0)
    _fit(trainer, small, _loader(size=2))
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    loaded = torch.load(path, weights_only=True)
    assert loaded["hyper_parameters"]["loss"]["decimal_loss"] == "kl"
    assert loaded["hyper_parameters"]["scheduler"]["_target_"] == "hih.optim.step_decay"
    # The Hydra configs became Adam(lr=1e-4) and a step decay of 0.5 per epoch (one step here).
    assert loaded["lr_schedulers"] and small.optimizers().param_groups[0]["lr"] == pytest.approx(0.5e-4)
    assert "net" not in loaded["hyper_parameters"] and "codec" not in loaded["hyper_parameters"]
    assert set(loaded["state_dict"]) == set(small.state_dict())


def test_configuration_errors():
    make_codec = functools.partial(_codec, "wov")
    net = _net("wov")
    with pytest.raises(ValueError, match="does not match codec"):
        FaceAlignmentModule(net, HIHCodec(S, S // 4, decimal_size=DEC), norm_pair=(0, 1))
    with pytest.raises(ValueError, match="a layout or a norm_pair"):
        FaceAlignmentModule(net, make_codec())
    with pytest.raises(ValueError, match="no pupil"):
        FaceAlignmentModule(
            _net("wov", num_landmarks=68),
            make_codec(),
            layout="300w",
            norm="pupil",
        )
    with pytest.raises(ValueError, match=r"unknown loss option\(s\) \['hed'\]"):
        FaceAlignmentModule(net, make_codec(), norm_pair=(0, 1), loss={"hed": 1.0})
    with pytest.raises(ValueError, match="optimizer must be a Hydra _partial_ target"):
        FaceAlignmentModule(net, make_codec(), norm_pair=(0, 1), optimizer={"name": "sgd", "lr": 0.1})
    module = FaceAlignmentModule(
        net, make_codec(), norm_pair=(0, 1), scheduler=functools.partial(step_decay, step_size=0)
    )
    trainer = _trainer(max_steps=1, limit_val_batches=0)
    with pytest.raises(ValueError, match="step_size is in epochs and must be >= 1"):
        _fit(trainer, module, _loader(size=2))


def test_channels_last_and_compile_keep_outputs_and_keys():
    plain = _module("hih_c")
    fast = _module("hih_c", channels_last=True, compile=True)
    fast.load_state_dict(plain.state_dict())  # same keys: in-place compile adds no "_orig_mod." prefix
    assert set(fast.state_dict()) == set(plain.state_dict())
    # Forward through the uncompiled path only (compiling on CPU would take a while);
    # channels_last must not change numbers.
    fast.net._compiled_call_impl = None
    plain.eval(), fast.eval()
    image = RandomFaces(2).images
    with torch.no_grad():
        a, b = plain(image), fast(image)
    assert torch.allclose(a.heatmaps[-1], b.heatmaps[-1], atol=1e-5) and torch.allclose(a.head, b.head, atol=1e-5)


def test_scheduler_gets_only_the_run_lengths_it_asks_for():
    from hih.optim import run_lengths_needed

    assert run_lengths_needed(step_decay) == ["steps_per_epoch"]
    assert run_lengths_needed(onecycle) == ["total_steps"]
    assert run_lengths_needed(functools.partial(cosine, total_steps=10)) == []  # given in the config
    assert run_lengths_needed(torch.optim.lr_scheduler.ExponentialLR) == []  # any torch scheduler as a partial


@pytest.mark.parametrize(
    "overrides, factory",
    [
        ([], "onecycle"),
        (["module/scheduler=cosine"], "cosine"),
        (["experiment=paper/wflw"], "step_decay"),
        (["module.scheduler=null"], None),
    ],
)
def test_module_configs_are_partials(overrides, factory):
    """conf/module: optimizer and scheduler reach the module as Hydra partials, as pipeline.build passes them."""
    from hydra.utils import instantiate

    from hih.pipeline import compose

    cfg = compose("train", overrides, output_dir="unused")
    net = build_net(head="none", num_landmarks=N, **TINY)
    module = instantiate(cfg.module, net=net, codec=HeatmapCodec(S, S // 4), norm_pair=(0, 1), _recursive_=False)
    opt = module.optimizer_factory(module.parameters())
    assert type(opt).__name__ == cfg.module.optimizer._target_.rsplit(".", 1)[1]
    assert opt.defaults["lr"] == cfg.module.optimizer.lr
    assert (
        getattr(module.scheduler_factory, "func", None).__name__ == factory
        if factory
        else module.scheduler_factory is None
    )
