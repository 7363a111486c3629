"""hih-quantization: the authors' rows reproduce the shape of the paper's Table 8 "Ideal" column,
every row names its label settings, every registered method (a new one included) is measured, and
the bar chart stays readable with many rows."""

from __future__ import annotations

import pytest

from hih.analysis.quantization import analyse, bar_figure, method_groups, method_variants, pivot, table8_ratios
from hih.codecs.heatmap import HeatmapCodec
from hih.data.datasets import get_layout, read_dataset
from hih.data.synthetic import ensure_synthetic
from hih.methods import Method, _registry, method_names, register


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    root = tmp_path_factory.mktemp("q") / "synthetic"
    ensure_synthetic(root, n_train=1, n_test=150, seed=3, image_size=96, progress=False, workers=1)
    return read_dataset("synthetic", root, "test")


@pytest.fixture(scope="module")
def rows(records):
    methods = [m for m in method_variants(names=["hih_c"]) if m.decode == "decimal corner"]
    return analyse(records, get_layout("wflw").norm_pair, methods, progress=False)


def test_round_quantizer_gives_the_papers_table8_ratios(rows):
    # Paper Table 8 "Ideal" (WFLW): 0.420 / 0.182 / 0.091, ratios 2.31 and 2.00.
    r = table8_ratios(rows, "float", "cell", "round")
    assert 2.1 <= r["4x4/8x8"] <= 2.4, r
    assert 1.9 <= r["8x8/16x16"] <= 2.3, r
    # floor + corner (eq. 2 as written) halves exactly: 4x4/8x8 = 2 up to sampling noise.
    f = table8_ratios(rows, "float", "subpixel", "floor")
    assert abs(f["4x4/8x8"] - 2.0) < 0.06, f


def test_every_row_records_its_label_settings(rows):
    assert rows and all({"integer_target", "decimal_quantizer"} <= set(r) for r in rows)
    assert {(r["integer_target"], r["decimal_quantizer"]) for r in rows} == {("subpixel", "floor"), ("cell", "round")}
    names = {(m.method.split("/")[0], m.integer_target, m.decimal_quantizer) for m in method_variants()}
    assert ("baseline", "cell", None) in names and ("hih_c", "cell", "round") in names


def test_every_registered_method_is_measured_once_per_codec():
    groups = method_groups()
    assert sorted(n for g in groups for n in g) == method_names()
    # HIH_C, HIH_T and HIH_L share one codec, so they share a row.
    assert any({"hih_c", "hih_t", "hih_l"} <= set(g) for g in groups)
    measured = {n for v in method_variants() for n in v.method.split("/")}
    assert measured == set(method_names())


class ProbeCodec(HeatmapCodec):
    """A throwaway method's codec: decodes like the baseline, under its own class."""


@pytest.fixture
def probe_method():
    name = "zz_probe"
    register(Method(name, ProbeCodec, {"decoder": "argmax"}))
    try:
        yield name
    finally:
        _registry._REGISTRY.pop(name, None)


def test_a_newly_registered_method_reaches_the_analysis(records, probe_method):
    variants = method_variants(input_size=64, heatmap_size=16)
    mine = [v for v in variants if probe_method in v.method.split("/")]
    assert mine and all(isinstance(v.codec, ProbeCodec) for v in mine)
    # Its rows are measured like the baseline's, whose codec it decodes like: same numbers.
    picked = [v for v in variants if v.method in (probe_method, "baseline")]
    out = analyse(records[:20], get_layout("wflw").norm_pair, picked, input_size=64, progress=False)
    probe = {(r["decode"], r["integer_target"], r["variant"]): r["nme"] for r in out if r["method"] == probe_method}
    base = {(r["decode"], r["integer_target"], r["variant"]): r["nme"] for r in out if r["method"] == "baseline"}
    assert len(probe) == 6 and probe == base  # argmax corner / centre (ours), centre (authors); float / rounded


def test_an_option_the_method_fixes_is_not_swept():
    name = "zz_corner"
    register(Method(name, ProbeCodec, {"decoder": "argmax", "anchor": "corner"}))
    try:
        rows = [(v.decode, v.integer_target) for v in method_variants(input_size=64, heatmap_size=16, names=[name])]
    finally:
        _registry._REGISTRY.pop(name, None)
    assert rows == [("argmax corner", "subpixel"), ("argmax corner", "cell")]


def test_bar_chart_labels_do_not_overlap():
    methods = method_variants()
    assert len(methods) >= 13
    fake = [m.row(v, nme=1.0 + i / 10) for i, m in enumerate(methods) for v in ("float", "rounded")]
    fig = bar_figure(fake)
    fig.canvas.draw()
    ax = fig.axes[0]
    labels = [t for t in ax.get_yticklabels() if t.get_text()]
    assert len(labels) == len(pivot(fake)) == len(methods)  # one label per row
    boxes = [t.get_window_extent() for t in labels]
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not boxes[i].overlaps(boxes[j]), (labels[i].get_text(), labels[j].get_text())
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_analysis_progress_lines_for_a_log_file(records, capsys):
    methods = [v for v in method_variants(input_size=64, heatmap_size=16) if v.method == "baseline"]
    analyse(records[:10], get_layout("wflw").norm_pair, methods, input_size=64, progress=True)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("ideal-condition NME: ")]
    n = 2 * len(methods)  # float and rounded labels; under 10 jobs, a line each (stdout is not a terminal)
    assert [ln.split()[2] for ln in lines] == [f"{k}/{n}" for k in range(1, n + 1)] + [f"{n}/{n}"]
    assert all("eta" in ln for ln in lines[:-1]) and "done in" in lines[-1]
