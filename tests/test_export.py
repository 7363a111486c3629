"""hih-export: ONNX with a dynamic batch, onnxruntime vs PyTorch within 1e-4 (heatmaps, head, landmarks)."""

from __future__ import annotations

import pytest

from hih.pipeline import compose

TINY = ["debug=tiny"]
DECIMAL = {"hih_c", "hih_t", "hih_l"}  # only decimal methods have a decimal_size


@pytest.mark.parametrize(
    "model,dynamo",
    [("hih_c", False), ("hih_l", False), ("wov", False), pytest.param("hih_c", True, marks=pytest.mark.slow)],
)
def test_onnx_round_trip_within_1e4(tmp_path, model, dynamo):
    onnx = pytest.importorskip("onnx")
    from hih.cli.export import export

    cfg = compose(
        "export",
        [
            *TINY,
            f"model={model}",
            *(["model.decimal_size=4"] if model in DECIMAL else []),
            f"dynamo={str(dynamo).lower()}",
            "check_batch_sizes=[1,3]",
        ],
        output_dir=tmp_path,
    )
    diffs = export(cfg)
    path = tmp_path / f"{model}.onnx"
    onnx.checker.check_model(str(path))
    batch = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param, "the batch dimension must be dynamic"
    head = {"hih_c": "decimal", "hih_l": "decimal", "wov": "offset"}[model]
    assert diffs["heatmap"] <= 1e-4 and diffs[head] <= 1e-4 and diffs["landmarks"] <= 1e-4
    assert diffs["argmax_ties"] < 4 * 98  # most landmarks were compared


def test_export_fails_loudly_beyond_tolerance(tmp_path):
    from hih.cli.export import export

    cfg = compose("export", [*TINY, "model.decimal_size=4", "dynamo=false", "tolerance=-1"], output_dir=tmp_path)
    with pytest.raises(RuntimeError, match="ONNX check failed: .* differs by .* > tolerance -1"):
        export(cfg)
