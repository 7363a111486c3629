"""Codecs: ideal-condition round trips against their theoretical bounds and analytic means,
border handling, input validation, determinism and the build_codec factory.

Ideal conditions: the encoded targets are fed back as network outputs (loss = 0), so the only
error left is the representation's quantization error.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hih.codecs import HeatmapCodec, HIHCodec, OffsetMapCodec, OffsetValueCodec
from hih.codecs.common import MEAN_DIST_TO_CENTRE, MEAN_DIST_TO_CORNER
from hih.methods import build_codec
from hih.methods import method_names as codec_names

IN, HM = 64, 16  # small maps keep the suite fast; stride 4 as in the paper
STRIDE = IN // HM


def ideal(codec, landmarks: torch.Tensor) -> torch.Tensor:
    """decode(encode(x)) with the targets fed back as outputs."""
    return codec.decode(codec.targets_as_outputs(codec.encode(landmarks)))


def uniform_in_cells(n: int, lo_cell: int, hi_cell: int, stride: int = STRIDE, seed: int = 0) -> torch.Tensor:
    """(1, n, 2) landmarks uniform over cells [lo_cell, hi_cell) on both axes, in input pixels."""
    g = torch.Generator().manual_seed(seed)
    return (lo_cell + torch.rand(1, n, 2, generator=g, dtype=torch.float64) * (hi_cell - lo_cell)).float() * stride


landmark_batches = st.integers(1, 3).flatmap(
    lambda b: st.integers(1, 6).flatmap(
        lambda n: st.lists(
            st.floats(0.0, float(IN), exclude_max=True, width=32), min_size=2 * b * n, max_size=2 * b * n
        ).map(lambda v: torch.tensor(v, dtype=torch.float32).view(b, n, 2))
    )
)


# ---------------------------------------------------------------------------------------------
# Round trips within the theoretical bound (hypothesis, random sub-pixel landmarks)
# ---------------------------------------------------------------------------------------------

# (codec, per-axis error bound in input pixels); errors are prediction - truth.
AXIS_BOUNDS = [
    (HeatmapCodec(IN, HM, decoder="argmax", anchor="centre"), (-0.5 * STRIDE, 0.5 * STRIDE)),
    (HeatmapCodec(IN, HM, decoder="argmax", anchor="corner"), (-1.0 * STRIDE, 0.0)),
    (HIHCodec(IN, HM, decimal_size=8, decimal_decode="corner"), (-STRIDE / 8, 0.0)),
    (HIHCodec(IN, HM, decimal_size=8, decimal_decode="centre"), (-STRIDE / 16, STRIDE / 16)),
    (HIHCodec(IN, HM, decimal_size=4, decimal_decode="corner"), (-STRIDE / 4, 0.0)),
    (HIHCodec(IN, HM, decimal_size=16, decimal_decode="centre"), (-STRIDE / 32, STRIDE / 32)),
    (HIHCodec(IN, HM, decimal_size=5, decimal_decode="corner"), (-STRIDE / 5, 0.0)),
    (HIHCodec(IN, HM, integer_only=True), (-0.5 * STRIDE, 0.5 * STRIDE)),
    (OffsetValueCodec(IN, HM), (-1e-4, 1e-4)),
]


@pytest.mark.parametrize("codec,bound", AXIS_BOUNDS, ids=[repr(c) for c, _ in AXIS_BOUNDS])
@settings(max_examples=30, deadline=None)
@given(x=landmark_batches)
def test_round_trip_within_bound(codec, bound, x):
    err = ideal(codec, x) - x
    lo, hi = bound
    # Float slack: decoded values are sums of cell indices and fractions times the stride.
    assert (err >= lo - 1e-4).all() and (err <= hi + 1e-4).all(), (err.min().item(), err.max().item())


@settings(max_examples=30, deadline=None)
@given(x=landmark_batches)
def test_wsm_within_bound(x):
    codec = HeatmapCodec(IN, HM, decoder="wsm")
    err = ideal(codec, x) - x
    cell = torch.floor(x / STRIDE)
    interior = (cell > 0) & (cell < HM - 1)
    # Quarter-cell shift toward the landmark inside the map; no shift (half a cell) on the border.
    bound = torch.where(interior, torch.tensor(0.25 * STRIDE), torch.tensor(0.5 * STRIDE))
    assert (err.abs() <= bound + 1e-4).all()


@settings(max_examples=25, deadline=None)
@given(x=landmark_batches)
def test_wom_single_landmark_exact(x):
    # One landmark per face cannot collide: WOM is then exact like WOV.
    codec = OffsetMapCodec(IN, HM)
    for i in range(x.shape[1]):  # a handful of landmarks, each its own face
        xi = x[:, i : i + 1]
        assert (ideal(codec, xi) - xi).abs().max() <= 1e-4


@settings(max_examples=25, deadline=None)
@given(x=landmark_batches)
def test_wom_collisions_stay_inside_cell(x):
    # With collisions the mean offset is still inside the cell: error < 1 cell per axis.
    err = ideal(OffsetMapCodec(IN, HM), x) - x
    assert (err.abs() < STRIDE).all()


@pytest.mark.parametrize("decoder", ["dark", "soft_argmax"])
@settings(max_examples=25, deadline=None)
@given(x=landmark_batches)
def test_continuous_decoders_bounded_everywhere(decoder, x):
    # Anywhere (borders included) the estimate stays finite and near the argmax cell.
    codec = HeatmapCodec(IN, HM, decoder=decoder)
    err = ideal(codec, x) - x
    assert torch.isfinite(err).all()
    if decoder == "dark":  # argmax is exact, the Taylor step is clamped to one cell
        assert (err.abs() <= 1.5 * STRIDE + 1e-4).all()


def test_continuous_decoders_interior_bound():
    # Away from the border (3 sigma + Taylor stencil) both are far below the argmax error.
    x = uniform_in_cells(2000, 8, 56, seed=1)  # input 256 / heatmap 64: the soft-argmax default beta's setting
    for decoder, bound_cells in (("dark", 0.01), ("soft_argmax", 0.25)):
        codec = HeatmapCodec(256, 64, decoder=decoder)
        err = (ideal(codec, x) - x).abs() / codec.stride
        assert err.max() < bound_cells, (decoder, err.max().item())


@pytest.mark.parametrize("u", [1.0, 5.0, 7.0, 15.0])
def test_cell_edges_and_one_ulp_below(u):
    # A landmark exactly on a cell edge, or one float ulp below it, must decode into its own cell
    # floor(u) (eq. 1); a tie in the integer heatmap would move it a whole cell.
    xs = torch.tensor([u * STRIDE, torch.nextafter(torch.tensor(u * STRIDE), torch.tensor(0.0)).item()])
    x = torch.stack((xs, xs.flip(0)), dim=-1).unsqueeze(0)  # (1, 2, 2)
    for codec in (HIHCodec(IN, HM, decimal_size=8), OffsetValueCodec(IN, HM), OffsetMapCodec(IN, HM)):
        err = (ideal(codec, x) - x).abs()
        assert err.max() <= STRIDE / 8 + 1e-4, (codec, err)


def test_stride_not_power_of_two():
    codec = HIHCodec(96, 32, decimal_size=8, decimal_decode="centre")  # stride 3
    x = uniform_in_cells(500, 0, 32, stride=3, seed=2)
    x = torch.cat((x, torch.tensor([[[95.99999, 3.0]]])), dim=1)
    err = (ideal(codec, x) - x).abs()
    assert err.max() <= 3 / 16 + 1e-4


# ---------------------------------------------------------------------------------------------
# Mean ideal error against the analytic values
# ---------------------------------------------------------------------------------------------

N_MEAN = 10000


def mean_error(codec, x) -> float:
    return (ideal(codec, x) - x).norm(dim=-1).mean().item()


@pytest.mark.parametrize(
    "codec,expected_cells",
    [
        (HeatmapCodec(IN, HM, decoder="argmax", anchor="centre"), MEAN_DIST_TO_CENTRE),
        (HeatmapCodec(IN, HM, decoder="argmax", anchor="corner"), MEAN_DIST_TO_CORNER),
        (HeatmapCodec(IN, HM, decoder="wsm"), MEAN_DIST_TO_CENTRE / 2),  # per-axis uniform on [-b/4, b/4]
        (HIHCodec(IN, HM, decimal_size=8, decimal_decode="corner"), MEAN_DIST_TO_CORNER / 8),
        (HIHCodec(IN, HM, decimal_size=8, decimal_decode="centre"), MEAN_DIST_TO_CENTRE / 8),
        (HIHCodec(IN, HM, decimal_size=4, decimal_decode="corner"), MEAN_DIST_TO_CORNER / 4),
        (HIHCodec(IN, HM, decimal_size=16, decimal_decode="corner"), MEAN_DIST_TO_CORNER / 16),
        (HIHCodec(IN, HM, integer_only=True), MEAN_DIST_TO_CENTRE),
    ],
    ids=repr,
)
def test_mean_error_matches_analytic(codec, expected_cells):
    # Interior cells only: WSM does not shift on the border.
    x = uniform_in_cells(N_MEAN, 1, HM - 1, seed=3)
    got = mean_error(codec, x) / STRIDE
    assert got == pytest.approx(expected_cells, rel=0.03)


def test_hih_16_is_half_of_8():
    x = uniform_in_cells(N_MEAN, 0, HM, seed=4)
    e8 = mean_error(HIHCodec(IN, HM, decimal_size=8), x)
    e16 = mean_error(HIHCodec(IN, HM, decimal_size=16), x)
    assert e16 / e8 == pytest.approx(0.5, rel=0.03)


def test_wov_is_exact():
    x = uniform_in_cells(N_MEAN, 0, HM, seed=5)
    assert mean_error(OffsetValueCodec(IN, HM), x) < 1e-5


def test_wom_exact_without_collisions_and_not_with():
    codec = OffsetMapCodec(IN, HM)
    g = torch.Generator().manual_seed(6)
    cells = torch.randperm(HM * HM, generator=g)[:100]  # distinct cells: no collision
    cxy = torch.stack((cells % HM, cells // HM), dim=-1).float()
    off = torch.rand(2, 100, 2, generator=g)
    x = ((cxy + off[0]) * STRIDE).unsqueeze(0)
    assert mean_error(codec, x) < 1e-5
    # Pair every landmark with a second one in the same cell: the map holds their mean offset,
    # so each is off by half the distance between the two.
    y = ((cxy + off[1]) * STRIDE).unsqueeze(0)
    both = torch.cat((x, y), dim=1)
    err = (ideal(codec, both) - both).norm(dim=-1)
    half_gap = ((x - y).norm(dim=-1) / 2).repeat(1, 2)
    torch.testing.assert_close(err, half_gap, atol=1e-4, rtol=0)
    assert err.mean() > 0.1 * STRIDE


def test_wom_target_is_mean_of_colliding_offsets():
    codec = OffsetMapCodec(IN, HM)
    x = torch.tensor([[[4.4, 8.8], [6.0, 10.0], [40.0, 40.0], [-3.0, 5.0]]])  # first two share cell (1, 2)
    t = codec.encode(x)
    assert t["offset_mask"].sum() == 2  # the outside landmark is not written
    assert t["offset_mask"][0, 0, 2, 1] == 1 and t["offset_mask"][0, 0, 10, 10] == 1
    torch.testing.assert_close(t["offset_map"][0, :, 2, 1], torch.tensor([(0.1 + 0.5) / 2, (0.2 + 0.5) / 2]))
    assert t["offset_map"][0].abs().sum() == pytest.approx(0.3 + 0.35, abs=1e-5)


def test_dark_recovers_a_tilted_anisotropic_peak():
    # Exercises the Hessian's cross term: smoothing keeps the peak of a correlated Gaussian.
    g = torch.Generator().manual_seed(8)
    u = 20 + torch.rand(1, 50, 2, generator=g) * 24  # heatmap coordinates, interior of 64 x 64
    c = torch.arange(64) + 0.5
    dx = c.view(1, 1, 1, 64) - u[..., 0, None, None]
    dy = c.view(1, 1, 64, 1) - u[..., 1, None, None]
    inv = torch.linalg.inv(torch.tensor([[4.0, 2.4], [2.4, 2.25]]))  # correlation 0.8
    q = inv[0, 0] * dx**2 + 2 * inv[0, 1] * dx * dy + inv[1, 1] * dy**2
    hm = torch.exp(-0.5 * q)
    err = HeatmapCodec(256, 64, decoder="dark").decode({"heatmap": hm}) / 4 - u
    assert err.abs().max() < 0.02, err.abs().max()
    naive = HeatmapCodec(256, 64, decoder="argmax").decode({"heatmap": hm}) / 4 - u
    assert err.abs().mean() < 0.1 * naive.abs().mean()


def test_dark_and_soft_argmax_beat_argmax():
    x = uniform_in_cells(4000, 8, 56, seed=7)
    base = mean_error(HeatmapCodec(256, 64, decoder="argmax"), x)
    dark = mean_error(HeatmapCodec(256, 64, decoder="dark"), x)
    soft = mean_error(HeatmapCodec(256, 64, decoder="soft_argmax"), x)
    assert dark < 0.05 * base
    assert soft < 0.5 * base


# ---------------------------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------------------------


def test_heatmap_matches_eq3():
    sigma = 1.5
    x = torch.tensor([[[30.3, 21.7], [2.2, 61.0]]])
    hm = HeatmapCodec(IN, HM, sigma=sigma).encode(x)["heatmap"]
    u = x / STRIDE
    c = torch.arange(HM) + 0.5
    dx = c.view(1, 1, 1, HM) - u[..., 0, None, None]
    dy = c.view(1, 1, HM, 1) - u[..., 1, None, None]
    ref = torch.exp(-(dx**2 + dy**2) / (2 * sigma**2)) * (torch.maximum(dx.abs(), dy.abs()) <= 3 * sigma)
    torch.testing.assert_close(hm, ref, atol=1e-6, rtol=0)


def test_decimal_heatmap_eq2_eq3():
    codec = HIHCodec(IN, HM, decimal_size=8, decimal_sigma=1.0)
    x = torch.tensor([[[4 * 3.30, 4 * 7.95]]])  # offsets (0.30, 0.95) -> o* = (2, 7)
    dec = codec.encode(x)["decimal"][0, 0]
    assert dec.shape == (8, 8)
    assert dec[7, 2] == 1.0 and dec.flatten().argmax() == 7 * 8 + 2
    assert dec[7, 6] == 0.0 and dec[7, 5] > 0  # L-inf cut-off at 3 sigma
    assert dec[6, 2] == pytest.approx(math.exp(-0.5))


def test_targets_shapes_and_dtypes():
    x = torch.rand(2, 5, 2, dtype=torch.float64) * IN
    for name in codec_names():
        codec = build_codec(name, input_size=IN, heatmap_size=HM)
        t = codec.encode(x)
        assert t["heatmap"].shape == (2, 5, HM, HM) and t["heatmap"].dtype == torch.float64
        assert t["weight"].shape == (2, 5)
        if codec.head_key:
            assert codec.head_key in t
        assert set(t) == set(codec.target_keys)
    assert HIHCodec(IN, HM, decimal_size=4).encode(x)["decimal"].shape == (2, 5, 4, 4)
    assert OffsetValueCodec(IN, HM).encode(x)["offset"].shape == (2, 5, 2)
    t = OffsetMapCodec(IN, HM).encode(x)
    assert t["offset_map"].shape == (2, 2, HM, HM) and t["offset_mask"].shape == (2, 1, HM, HM)
    assert ideal(HIHCodec(IN, HM), x).dtype == torch.float64


def test_half_precision_landmarks_keep_subpixel_targets():
    # Targets are computed in float32 and returned in the landmarks' dtype.
    x = (torch.rand(2, 9, 2) * IN).half()
    codec = HIHCodec(IN, HM)
    got, ref = codec.encode(x), codec.encode(x.float())
    assert got["heatmap"].dtype == torch.float16
    assert torch.equal(got["decimal"], ref["decimal"].half())
    torch.testing.assert_close(got["heatmap"], ref["heatmap"].half())


# ---------------------------------------------------------------------------------------------
# Border, weights, robustness
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", codec_names())
def test_border_and_outside_landmarks(name):
    codec = build_codec(name, input_size=IN, heatmap_size=HM)
    nan, inf = float("nan"), float("inf")
    x = torch.tensor(
        [
            [
                [0.0, 0.0],
                [IN - 1e-3, 10.0],
                [IN, 10.0],
                [-5.0, 30.0],
                [IN + 10.0, IN + 10.0],
                [nan, 3.0],
                [inf, -inf],
                [10.0, 10.0],
            ]
        ]
    )
    t = codec.encode(x)
    for key, value in t.items():
        assert torch.isfinite(value).all(), key
    assert t["weight"].tolist() == [[1, 1, 0, 0, 0, 0, 0, 1]]
    # Clipped into the map: every landmark, inside or not, has a peak of its own.
    assert (t["heatmap"].flatten(2).amax(-1) > 0.5).all()
    cells = t["heatmap"].flatten(2).argmax(-1)[0]
    assert cells[2].item() == 2 * HM + HM - 1  # x = IN clips to the last column, y = 10 -> row 2
    assert cells[3].item() == 7 * HM + 0  # x = -5 clips to column 0
    p = codec.decode(codec.targets_as_outputs(t))
    assert torch.isfinite(p).all()
    assert ((p >= 0) & (p <= IN)).all()


def test_batch_size_one_and_determinism():
    x = torch.rand(1, 7, 2) * IN
    for name in codec_names():
        codec = build_codec(name, input_size=IN, heatmap_size=HM)
        t1, t2 = codec.encode(x), codec.encode(x)
        for k in t1:
            assert torch.equal(t1[k], t2[k]), (name, k)
        p1, p2 = ideal(codec, x), ideal(codec, x)
        assert p1.shape == (1, 7, 2) and torch.equal(p1, p2)


def test_decode_accepts_model_output():
    from hih.models.output import ModelOutput

    codec = HIHCodec(IN, HM)
    x = torch.rand(2, 3, 2) * IN
    t = codec.encode(x)
    out = ModelOutput(heatmaps=[torch.zeros_like(t["heatmap"]), t["heatmap"]], head=t["decimal"], head_key="decimal")
    torch.testing.assert_close(codec.decode(out), codec.decode(out.for_codec()))


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def test_decode_shape_errors():
    hm = torch.zeros(2, 3, HM, HM)
    with pytest.raises(ValueError, match=r"'heatmap'.*\(B, N, 16, 16\).*got \(2, 3, 16\)"):
        HeatmapCodec(IN, HM).decode({"heatmap": hm[..., 0]})
    with pytest.raises(ValueError, match=r"'heatmap'.*\(B, N, 16, 16\).*got \(2, 3, 8, 8\)"):
        HeatmapCodec(IN, HM).decode({"heatmap": torch.zeros(2, 3, 8, 8)})
    with pytest.raises(ValueError, match=r"lack key 'heatmap'"):
        HeatmapCodec(IN, HM).decode({"decimal": hm})
    with pytest.raises(ValueError, match=r"lack key 'decimal'.*\(2, 3, 8, 8\)"):
        HIHCodec(IN, HM).decode({"heatmap": hm})
    with pytest.raises(ValueError, match=r"'decimal'.*\(2, 3, 8, 8\).*got \(2, 4, 8, 8\)"):
        HIHCodec(IN, HM).decode({"heatmap": hm, "decimal": torch.zeros(2, 4, 8, 8)})
    with pytest.raises(ValueError, match=r"'decimal'.*\(2, 3, 8, 8\).*got \(2, 3, 4, 4\)"):
        HIHCodec(IN, HM).decode({"heatmap": hm, "decimal": torch.zeros(2, 3, 4, 4)})
    with pytest.raises(ValueError, match=r"'offset'.*\(2, 3, 2\).*got \(2, 3\)"):
        OffsetValueCodec(IN, HM).decode({"heatmap": hm, "offset": torch.zeros(2, 3)})
    with pytest.raises(ValueError, match=r"'offset_map'.*\(2, 2, 16, 16\).*got \(2, 3, 16, 16\)"):
        OffsetMapCodec(IN, HM).decode({"heatmap": hm, "offset_map": hm})
    # integer_only reads the integer heatmap alone
    assert HIHCodec(IN, HM, integer_only=True).decode({"heatmap": hm}).shape == (2, 3, 2)


def test_encode_and_constructor_errors():
    with pytest.raises(ValueError, match=r"landmarks must have shape \(B, N, 2\).*got \(3, 2\)"):
        HeatmapCodec(IN, HM).encode(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="multiple"):
        HeatmapCodec(100, 64)
    with pytest.raises(ValueError, match="decoder"):
        HeatmapCodec(decoder="nope")
    with pytest.raises(ValueError, match="anchor"):
        HeatmapCodec(anchor="middle")
    with pytest.raises(ValueError, match="decimal_size"):
        HIHCodec(decimal_size=0)
    with pytest.raises(ValueError, match="decimal_decode"):
        HIHCodec(decimal_decode="middle")
    with pytest.raises(ValueError, match="sigma"):
        HeatmapCodec(sigma=0.1)


def test_build_codec():
    expected = {
        "baseline": (HeatmapCodec, None),
        "wsm": (HeatmapCodec, None),
        "dark": (HeatmapCodec, None),
        "soft_argmax": (HeatmapCodec, None),
        "hih_c": (HIHCodec, "decimal"),
        "hih_t": (HIHCodec, "decimal"),
        "hih_l": (HIHCodec, "decimal"),
        "wov": (OffsetValueCodec, "offset"),
        "wom": (OffsetMapCodec, "offset_map"),
    }
    # Every module of hih.methods registers on import: local_offset (docs/adding_a_method.md) and hih_cp too.
    assert set(expected) | {"local_offset", "hih_cp"} <= set(codec_names())
    for name, (cls, head_key) in expected.items():
        codec = build_codec(name)
        assert type(codec) is cls and codec.head_key == head_key
    assert build_codec("wsm").decoder == "wsm" and build_codec("baseline").decoder == "argmax"
    assert build_codec("hih_c", decimal_size=16, decimal_decode="centre").decimal_size == 16
    with pytest.raises(ValueError, match="unknown method 'hihx'"):
        build_codec("hihx")
    with pytest.raises(ValueError, match=r"does not take \['decimal_size'\]"):
        build_codec("baseline", decimal_size=8)
    with pytest.raises(ValueError, match="fixes decoder='wsm'"):
        build_codec("wsm", decoder="dark")


@pytest.mark.parametrize("anchor, shift", [("centre", 0.5), ("corner", 0.0)])
def test_decode_integer_anchors(anchor, shift):
    """The integer heatmap alone: the argmax cell's centre, or its index (paper Table 7), times the stride."""
    codec = HIHCodec(IN, HM, decimal_size=8)
    x = uniform_in_cells(20, 1, HM - 1)
    got = codec.decode_integer(codec.encode(x)["heatmap"], anchor=anchor)
    torch.testing.assert_close(got, (torch.floor(x / STRIDE) + shift) * STRIDE)
    with pytest.raises(ValueError, match="anchor must be one of"):
        codec.decode_integer(codec.encode(x)["heatmap"], anchor="middle")
