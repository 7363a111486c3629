"""The compensation-head metrics wired into the module (issue 15) and the paper's Table 7 convention
(issue 12): decimal_acc / offset_err, the gains and the integer-only NME at the cell corner.

Module-level checks use an oracle net that returns the codec's own targets (``targets_as_outputs``)
for the faces of the batch, or random head outputs; the end-to-end check is a tiny hih-train run.
"""

from __future__ import annotations

import csv
import json
import math
import warnings

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from hih.codecs import HIHCodec, OffsetMapCodec, OffsetValueCodec
from hih.codecs.common import MEAN_DIST_TO_CORNER
from hih.data.synthetic import ensure_synthetic
from hih.data.targets import EncodedLoaders
from hih.methods import get_method
from hih.models import ModelOutput
from hih.module import FaceAlignmentModule
from tiny import N_TEST, N_TRAIN, tiny  # noqa: E402  (tests/tiny.py)

N, S, H = 40, 64, 16  # landmarks, input size, heatmap size (stride 4)
SUBSETS = ("pose", "blur")


class Faces(Dataset):
    """Random landmarks with the two eyes (landmarks 0, 1) 20-40 px apart; the image carries the face
    index in pixel (0, 0, 0) so the oracle net can find its landmarks."""

    def __init__(self, size: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.landmarks = torch.rand(size, N, 2, generator=g) * (S - 8) + 4
        eye = torch.rand(size, generator=g) * 20 + 20  # inter-ocular distance in pixels
        left = torch.rand(size, 2, generator=g) * 8 + 8
        self.landmarks[:, 0] = left
        self.landmarks[:, 1] = left + torch.stack([eye, torch.zeros(size)], -1)
        self.subsets = torch.rand(size, len(SUBSETS), generator=g) > 0.5
        self.subsets[0] = True  # no subset is empty

    def __len__(self) -> int:
        return len(self.landmarks)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        image = torch.zeros(3, S, S)
        image[0, 0, 0] = i
        return {"image": image, "landmarks": self.landmarks[i], "subsets": self.subsets[i], "index": torch.tensor(i)}


class OracleNet(nn.Module):
    """The ideal network (the codec's targets fed back as outputs), or random head outputs."""

    wants_cells = False

    def __init__(self, codec, landmarks: torch.Tensor, random_head: bool = False):
        super().__init__()
        self.codec, self.landmarks, self.random_head = codec, landmarks, random_head
        self.head_key, self.input_size = codec.head_key, codec.input_size
        self.dummy = nn.Parameter(torch.zeros(()))
        self.generator = torch.Generator().manual_seed(1)

    def forward(self, image: torch.Tensor) -> ModelOutput:
        lm = self.landmarks[image[:, 0, 0, 0].long()]
        out = self.codec.targets_as_outputs(self.codec.encode(lm))
        head = out[self.head_key]
        if self.random_head:
            head = torch.rand(head.shape, generator=self.generator)
        return ModelOutput([out["heatmap"] + 0 * self.dummy], head, self.head_key)


def _module(codec, faces: Faces, random_head: bool = False) -> FaceAlignmentModule:
    net = OracleNet(codec, faces.landmarks, random_head)
    return FaceAlignmentModule(net, codec, norm_pair=(0, 1), subset_names=SUBSETS)


def _trainer() -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def _loader(faces: Faces) -> DataLoader:
    return DataLoader(faces, batch_size=16, shuffle=False)


def _encoded(codec, faces: Faces) -> EncodedLoaders:
    """The faces as val and test loaders whose batches get the codec's targets, as from FaceDataModule."""
    return EncodedLoaders(codec, val=_loader(faces), test=_loader(faces))


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*num_workers.*")
        yield


def test_registry_names_each_heads_metric():
    assert (
        get_method("hih_c").head_metric.name == "decimal_acc" and get_method("hih_c").head_metric.gain == "decimal_gain"
    )
    assert get_method("hih_t").head_metric == get_method("hih_l").head_metric == get_method("hih_c").head_metric
    for name in ("wov", "wom", "local_offset"):
        assert get_method(name).head_metric.name == "offset_err" and get_method(name).head_metric.gain == "offset_gain"
    for name in ("baseline", "wsm", "dark", "soft_argmax"):
        assert get_method(name).head_metric is None


@pytest.mark.parametrize("d", [4, 8])
def test_decimal_acc_is_one_on_targets_and_gain_is_the_centring_error(d):
    codec, faces = HIHCodec(S, H, decimal_size=d), Faces(32)
    module = _module(codec, faces)
    val = _trainer().validate(module, datamodule=_encoded(codec, faces), verbose=False)[0]
    assert val["val/decimal_acc"] == 1.0
    # The ideal decimal map places every landmark within 1/d of a cell; the centre alone is worse.
    assert val["val/nme_integer"] > val["val/nme"]
    assert val["val/decimal_gain"] == pytest.approx(val["val/nme_integer"] - val["val/nme"], rel=1e-5)
    test = _trainer().test(module, datamodule=_encoded(codec, faces), verbose=False)[0]
    assert test["test/decimal_acc"] == 1.0
    assert test["test/decimal_acc/pose"] == 1.0 and test["test/decimal_acc/blur"] == 1.0


@pytest.mark.parametrize("d", [4, 8])
def test_decimal_acc_of_random_outputs_is_chance(d):
    codec, faces = HIHCodec(S, H, decimal_size=d), Faces(64, seed=3)
    module = _module(codec, faces, random_head=True)
    val = _trainer().validate(module, datamodule=_encoded(codec, faces), verbose=False)[0]
    count = faces.landmarks.shape[0] * N  # every landmark lies inside the input
    p = 1.0 / d**2
    # hits ~ Binomial(count, p) for independent random maps: within 5 standard deviations.
    assert abs(val["val/decimal_acc"] - p) < 5 * math.sqrt(p * (1 - p) / count)


def _local_offset_codec():
    from hih.methods.local_offset import LocalOffsetCodec  # the worked example (docs/adding_a_method.md)

    return LocalOffsetCodec(S, H)


@pytest.mark.parametrize(
    "make_codec",
    [lambda: OffsetValueCodec(S, H), lambda: OffsetMapCodec(S, H), _local_offset_codec],
    ids=["wov", "wom", "local_offset"],
)
def test_offset_err_is_zero_on_targets_and_positive_on_random(make_codec):
    codec = make_codec()
    faces = Faces(32, seed=4)
    # Few collisions matter: WOM's map holds the colliding landmarks' mean offset in a shared cell.
    if isinstance(codec, OffsetMapCodec):
        faces.landmarks = faces.landmarks[:, :8].contiguous()
        faces.landmarks[:, 2:] = torch.linspace(6, S - 6, 6).unsqueeze(-1).expand(6, 2)  # distinct cells
    ideal = _trainer().validate(_module(codec, faces), datamodule=_encoded(codec, faces), verbose=False)[0]
    assert ideal["val/offset_err"] == pytest.approx(0.0, abs=1e-6)
    assert ideal["val/offset_gain"] > 0  # the exact offset beats the cell centre
    noisy = _trainer().test(_module(codec, faces, random_head=True), datamodule=_encoded(codec, faces), verbose=False)[
        0
    ]
    # Uniform offsets in [0, 1)^2 against uniform targets: E|a - b| = 0.5214 cells (2D), far from 0.
    assert 0.35 < noisy["test/offset_err"] < 0.7
    assert {"test/offset_err/pose", "test/offset_err/blur"} <= set(noisy)


@pytest.mark.parametrize("codec", [HIHCodec(S, H, decimal_size=4), OffsetValueCodec(S, H)], ids=["hih", "wov"])
def test_integer_only_nme_at_corner_and_centre_on_targets(codec):
    """The integer heatmap alone, read at the argmax index (paper Table 7), is off by the
    whole sub-cell offset: 0.765 strides on average; read at the cell centre, by half that."""
    faces = Faces(96, seed=5)
    test = _trainer().test(_module(codec, faces), datamodule=_encoded(codec, faces), verbose=False)[0]
    lm = faces.landmarks
    iod = torch.linalg.vector_norm(lm[:, 0] - lm[:, 1], dim=-1)  # each test face's own, pixels
    expected = (MEAN_DIST_TO_CORNER * codec.stride / iod * 100).mean().item()  # percent
    assert test["test/nme_integer_corner"] == pytest.approx(expected, rel=0.03)
    assert test["test/nme_integer"] == pytest.approx(expected / 2, rel=0.03)
    pose = faces.subsets[:, 0]
    assert test["test/nme_integer_corner/pose"] == pytest.approx(
        (MEAN_DIST_TO_CORNER * codec.stride / iod[pose] * 100).mean().item(), rel=0.05
    )
    # FR / AUC against a direct per-face reference: the landmark minus its cell's corner.
    per_face = (
        torch.linalg.vector_norm(lm - torch.floor(lm / codec.stride) * codec.stride, dim=-1).mean(1) / iod * 100
    ).double()
    assert test["test/fr_10_integer_corner"] == pytest.approx((per_face > 10).double().mean().item() * 100, abs=1e-4)
    assert test["test/auc_10_integer_corner"] == pytest.approx(
        (10 - per_face).clamp(min=0).mean().item() / 10, abs=1e-5
    )
    gain = codec.head_key and get_method("hih_c" if codec.head_key == "decimal" else "wov").head_metric.gain
    assert test[f"test/{gain}"] == pytest.approx(test["test/nme_integer"] - test["test/nme"], rel=1e-5)
    assert test[f"test/{gain}/pose"] == pytest.approx(test["test/nme_integer/pose"] - test["test/nme/pose"], rel=1e-5)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    ensure_synthetic(root / "synthetic", n_train=N_TRAIN, n_test=N_TEST, workers=1, progress=False)
    return root


@pytest.mark.slow
def test_tiny_hih_run_logs_head_metrics_per_validation(data_dir, tmp_path):
    from hih.pipeline import compose, train

    run = tmp_path / "run"
    cfg = compose("train", tiny(data_dir, "model=hih_c", "trainer.max_epochs=2"), output_dir=run)
    metrics = train(cfg)
    with open(run / "csv" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    val_rows = [r for r in rows if r.get("val/nme")]
    assert len(val_rows) == 2  # one per epoch
    for key in ("val/decimal_acc", "val/nme_integer", "val/decimal_gain"):
        assert all(r.get(key) not in (None, "") for r in val_rows), key
    for r in val_rows:
        assert 0.0 <= float(r["val/decimal_acc"]) <= 1.0
        assert float(r["val/decimal_gain"]) == pytest.approx(
            float(r["val/nme_integer"]) - float(r["val/nme"]), abs=1e-4
        )
    train_rows = [r for r in rows if r.get("train/decimal_acc")]
    assert len(train_rows) == 2
    written = json.loads((run / "metrics.json").read_text())
    assert written == metrics
    assert 0.0 <= written["test/decimal_acc"] <= 1.0
    assert written["test/decimal_gain"] == pytest.approx(written["test/nme_integer"] - written["test/nme"], abs=1e-4)
    assert {"test/nme_integer_corner", "test/fr_10_integer_corner", "test/auc_10_integer_corner"} <= set(written)


# ------------------------------------------------------------------ where the results are shown
def _run_metrics(head: bool) -> dict[str, float]:
    out = {
        "test/nme": 4.0,
        "test/fr_10": 2.0,
        "test/auc_10": 0.5,
        "test/nme/pose": 6.0,
        "test/fr_10/pose": 3.0,
        "test/auc_10/pose": 0.4,
    }
    if head:
        for suffix, bump in (("_integer", 0.5), ("_integer_corner", 1.5)):
            out.update(
                {f"test/{m}{suffix}{s}": v + bump for m, v in (("nme", 4.0), ("fr_10", 2.0)) for s in ("", "/pose")}
            )
            out.update({f"test/auc_10{suffix}{s}": 0.3 for s in ("", "/pose")})
        out.update(
            {
                "test/decimal_acc": 0.0625,
                "test/decimal_acc/pose": 0.07,
                "test/decimal_gain": 0.5,
                "test/decimal_gain/pose": 0.5,
            }
        )
    return out


def test_console_tables_show_head_metrics_and_both_integer_anchors():
    from rich.console import Console

    from hih.analysis.results import column_order, results_tables

    names = [k.split("/")[1] for k in _run_metrics(True) if k.count("/") == 1]
    assert sorted(names, key=column_order) == [
        "nme",
        "fr_10",
        "auc_10",
        "nme_integer",
        "fr_10_integer",
        "auc_10_integer",
        "nme_integer_corner",
        "fr_10_integer_corner",
        "auc_10_integer_corner",
        "decimal_acc",
        "decimal_gain",
    ]
    main, integer = results_tables(_run_metrics(True))
    assert [c.header for c in main.columns] == ["subset", "nme", "fr_10", "auc_10", "decimal_acc", "decimal_gain"]
    assert [c.header for c in integer.columns][1:] == [
        f"{m}\n{a}" for a in ("centre", "corner") for m in ("nme", "fr_10", "auc_10")
    ]
    console = Console(width=100, record=True)
    console.print(main)
    text = console.export_text()
    assert "0.062" in text and "chance 1/d²" in text  # accuracy with 3 decimals, and its caption
    assert len(results_tables(_run_metrics(False))) == 1  # a baseline: one table, no caption
    assert results_tables(_run_metrics(False))[0].caption is None


def test_report_lists_head_metrics_and_corner_tables(tmp_path):
    import yaml

    from hih.analysis.report import metric_families, summary_table, write_report

    root = tmp_path / "sweep"
    for num, model in enumerate(("baseline", "hih_c")):
        job = root / str(num)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"model={model}"]))
        (job / ".hydra" / "config.yaml").write_text(
            yaml.safe_dump({"model": {"name": model}, "data": {"layout": "wflw"}})
        )
        (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"job": {"num": num}}}))
        (job / "metrics.json").write_text(json.dumps(_run_metrics(model != "baseline")))
    report = write_report(root, plots=False)
    families = metric_families(report.runs)
    # Table 7's convention (the corner) first, each metric's centre beside it.
    assert families[3:] == [
        "nme_integer_corner",
        "nme_integer",
        "fr_10_integer_corner",
        "fr_10_integer",
        "auc_10_integer_corner",
        "auc_10_integer",
        "decimal_acc",
        "decimal_gain",
    ]
    header, rows = summary_table(report.runs)
    assert header[4:-1] == [
        "nme",
        "fr_10",
        "auc_10",
        "nme_integer_corner",
        "nme_integer",
        "decimal_acc",
        "decimal_gain",
    ]
    assert rows[0][9:11] == [None, None] and rows[1][9:11] == [0.0625, 0.5]
    assert {"decimal_acc", "decimal_gain", "nme_integer_corner"} <= set(report.csvs)
    md = report.markdown.read_text()
    assert "| model=hih_c | hih_c | completed | 0.062 | 0.070 |" in md  # the accuracy table, baseline left out
    assert "argmax cell corner (Table 7, the paper's convention)" in md
