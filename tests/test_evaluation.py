"""hih.evaluation: the metric keys (built and parsed in one place) and the stage evaluators, for every
registered method, on the ideal network (the codec's targets fed back as its outputs)."""

from __future__ import annotations

import pytest
import torch

from hih.evaluation import MetricKey, StageEvaluator, metric_key, parse_key, redecoders
from hih.evaluation.keys import in_stage, parse_name
from hih.methods import build_codec, codec_parameters, method_names
from hih.models import ModelOutput
from test_report_golden import metrics_of  # noqa: E402  (tests/: every key family)

N, S, DEC = 5, 64, 4
SUBSETS = ("pose", "blur")


def _codec(method: str):
    sizes = {"input_size": S, "heatmap_size": S // 4, "decimal_size": DEC}
    return build_codec(method, **{k: v for k, v in sizes.items() if k in codec_parameters(method)})


def _batch(codec, seed: int = 0):
    """The ideal network's output for random faces, their landmarks, targets and subsets."""
    g = torch.Generator().manual_seed(seed)
    landmarks = torch.rand(3, N, 2, generator=g) * (S - 16) + 8
    targets = codec.encode(landmarks)
    outputs = codec.targets_as_outputs(targets)
    output = ModelOutput([outputs["heatmap"]], outputs.get(codec.head_key), codec.head_key)
    subsets = torch.tensor([[True, False], [False, True], [True, True]])
    return output, landmarks, targets, subsets


def test_keys_are_written_and_read_back():
    assert metric_key("test", "nme") == metric_key("test", "nme", "full") == "test/nme"
    assert metric_key("test", "nme", "pose", variant="_integer_corner") == "test/nme_integer_corner/pose"
    assert metric_key("test", "fr_10", "pose", method="dark") == "test/fr_10@dark/pose"
    assert parse_key("test/nme_integer_corner/pose") == MetricKey("test", "nme", "_integer_corner", None, "pose")
    assert parse_key("test/nme@dark/pose") == MetricKey("test", "nme", "", "dark", "pose")
    assert parse_key("test/nme@dark/pose").name == "nme@dark"
    assert parse_key("val/decimal_gain") == MetricKey("val", "decimal_gain")
    assert parse_key("train/loss_epoch").metric == "loss_epoch"
    assert parse_name("fr_10_integer") == ("fr_10", "_integer", None)
    assert parse_name("_integer") == ("_integer", "", None)  # a suffix alone is not a variant
    for key in ("lr-AdamW", "epoch", "test/", "a/b/c/d"):
        assert parse_key(key) is None, key
    assert in_stage("test/nme", "test") and not in_stage("testing/nme", "test")
    with pytest.raises(ValueError, match="variant"):
        metric_key("test", "nme", variant="_centre")
    keys = list(metrics_of("baseline", 4.0)) + list(metrics_of("hih_c", 4.0)) + list(metrics_of("wov", 4.0))
    assert all(str(parse_key(k)) == k for k in keys)


@pytest.mark.parametrize("method", method_names())
def test_each_stage_scores_what_it_should(method):
    codec = _codec(method)
    output, landmarks, targets, subsets = _batch(codec)
    stages = {stage: StageEvaluator(stage, codec, (0, 1), SUBSETS) for stage in ("train", "val", "test")}
    stages["test"].per_face.reset()  # as on_test_epoch_start does
    for stage, evaluator in stages.items():
        pred = evaluator.update(output, landmarks, targets, subsets, torch.arange(3))
        assert (pred is None) == (stage == "train")
        assert evaluator.state_dict() == {}  # nothing persistent: checkpoints hold the network only
    values = {stage: evaluator.compute() for stage, evaluator in stages.items()}
    head = stages["test"].head_metric
    assert set(values["train"]) == ({f"train/{head.name}"} if head else set())
    val = {"val/nme", "val/fr_10", "val/auc_10"}
    if codec.head_key is not None:
        val.add("val/nme_integer")
    if head is not None:
        val |= {f"val/{head.name}", f"val/{head.gain}"}
    assert set(values["val"]) == val
    parsed = [parse_key(k) for k in values["test"]]
    assert all(p is not None and p.stage == "test" and str(p) in values["test"] for p in parsed)
    assert {p.subset for p in parsed} == {None, *SUBSETS}
    assert {p.method for p in parsed} == {None, *redecoders(codec)}
    assert {p.variant for p in parsed} == ({"", "_integer", "_integer_corner"} if codec.head_key else {""})
    if head is not None:  # the gain is integer-only NME minus NME, per subset
        for subset in (None, *SUBSETS):
            gain = values["test"][metric_key("test", head.gain, subset)]
            integer = values["test"][metric_key("test", "nme", subset, variant="_integer")]
            assert gain == integer - values["test"][metric_key("test", "nme", subset)]
    assert values["test"]["test/nme"] == values["val"]["val/nme"]  # one decode, two stages
    stages["test"].per_face.reset()  # the per-face results: every face, in order
    stages["test"].update(output, landmarks, targets, subsets, torch.arange(3))
    stages["test"].per_face.collect()
    assert stages["test"].per_face.indices.tolist() == [0, 1, 2]


def test_no_targets_no_head_metric_and_subsets_are_required():
    codec = _codec("hih_c")
    output, landmarks, _, subsets = _batch(codec)
    test = StageEvaluator("test", codec, (0, 1), SUBSETS)
    test.per_face.reset()
    test.update(output, landmarks, None, subsets)
    assert not any(parse_key(k).metric == "decimal_acc" for k in test.compute())
    with pytest.raises(KeyError, match="test batches must carry 'subsets'"):
        test.update(output, landmarks)
    with pytest.raises(ValueError, match="stage must be one of"):
        StageEvaluator("predict", codec, (0, 1))


def test_the_head_is_scored_from_the_output_and_the_targets_alone():
    codec = _codec("wov")
    output, _, targets, _ = _batch(codec)
    train = StageEvaluator("train", codec, (0, 1))
    train.score_head(output, targets)  # no batch: what the score reads is the output and the targets
    assert train.compute() == {"train/offset_err": pytest.approx(0.0, abs=1e-6)}  # the ideal head


def test_module_state_holds_the_network_only():
    """Checkpoints written before evaluation moved into StageEvaluator hold ``net.*`` only: they load
    strictly as long as no evaluator state becomes persistent."""
    from hih.methods import build_net
    from hih.module import FaceAlignmentModule

    net = build_net("hih_c", N, channels=8, input_size=S, hourglass_depth=2, decimal_size=DEC, width=8)
    module = FaceAlignmentModule(net, _codec("hih_c"), norm_pair=(0, 1), subset_names=SUBSETS)
    assert set(module.state_dict()) == {f"net.{k}" for k in net.state_dict()}
