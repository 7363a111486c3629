"""The head-probe study: every head x loss x seed on one frozen backbone's cached features.

:func:`run_study` composes each head as hih-train would (``model=<head>`` plus the given overrides,
e.g. ``recipe=authors_release``), caches the backbone's features once (:mod:`hih.analysis.head_probe`),
trains every head for ``steps`` steps per seed, measures the gradient at each decimal head's last
layer under each loss and weight, and writes ``probe.json`` and ``probe.md`` (table with a 95 %
t-interval over seeds). ``scripts/head_probe.py`` is its command line.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from hih.analysis.head_probe import (
    FeatureCache,
    build_head,
    cache_features,
    gradient_at_last_layer,
    load_frozen_backbone,
    train_head,
)
from hih.analysis.learning_curves import wall_seconds
from hih.analysis.report.runs import read_status
from hih.analysis.report.seeds import Stats
from hih.analysis.seed_curves import multirun_rows

__all__ = ["GRADIENT_LOSSES", "multirun_markdown", "multirun_table", "parse_spec", "run_study", "t_interval"]

#: The loss settings whose gradient at the decimal heads' last layer the study reports.
GRADIENT_LOSSES = (
    {"decimal_loss": "l2", "head": 1.0},
    {"decimal_loss": "l2", "head": 0.05},
    {"decimal_loss": "cls", "head": 0.05},
)


def t_interval(values: Sequence[float]) -> tuple[float, float]:
    """(mean, half-width of the 95 % t-interval over ``values``); half-width NaN for one value. The
    interval is the seed report's (:meth:`hih.analysis.report.seeds.Stats.half_width`)."""
    stats = Stats.of(list(values))
    half = stats.half_width()
    return stats.mean, math.nan if half is None else half


def parse_spec(spec: str) -> tuple[str, list[str]]:
    """ "hih_c:cls" -> ("hih_c", ["model.loss.decimal_loss=cls"]); "wom" -> ("wom", [])."""
    model, _, loss = spec.partition(":")
    return model, ([f"model.loss.decimal_loss={loss}"] if loss else [])


def _datasets(cfg):
    """The training faces (less the validation split) and the test faces, both as evaluation crops."""
    from hydra.utils import instantiate

    dm = instantiate(cfg.data.datamodule, _convert_="all")
    dm.prepare_data()
    records = dm.read_split(dm.train_split)
    train_idx, _ = dm._split_indices(len(records))
    train = dm._dataset([records[i] for i in train_idx], train=False)
    test = dm._dataset(dm.read_split(dm.test_split), train=False)
    return train, test


def features(cfg, ckpt: str | Path, cache_dir: str | Path, log: Callable[[str], None] = print):
    """(train, test) :class:`FeatureCache` of the checkpoint's backbone, computed once into ``cache_dir``."""
    cache_dir = Path(cache_dir)
    paths = cache_dir / "train.pt", cache_dir / "test.pt"
    if all(p.is_file() for p in paths):
        return tuple(FeatureCache.load(p) for p in paths)
    cache_dir.mkdir(parents=True, exist_ok=True)
    backbone = load_frozen_backbone(cfg, ckpt)
    out = []
    for path, dataset in zip(paths, _datasets(cfg)):
        start = time.perf_counter()
        cache = cache_features(backbone, dataset)
        cache.save(path)
        log(f"cached {len(cache)} faces -> {path} ({time.perf_counter() - start:.0f} s)")
        out.append(cache)
    return tuple(out)


def run_study(
    ckpt: str | Path,
    specs: Sequence[str],
    seeds: Sequence[int],
    steps: int,
    out_dir: str | Path,
    overrides: Sequence[str] = (),
    lr: float = 1e-3,
    eval_every: int = 0,
    batch_size: int = 32,
    features_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Train every ``specs`` head ("model[:decimal_loss]") once per seed; ``features_dir`` (default
    ``out_dir/features``) holds the cached features, shared by studies of the same backbone."""
    from hih.data.datasets import get_layout
    from hih.pipeline import compose

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base = compose("train", [*overrides])
    train, test = features(base, ckpt, features_dir or out_dir / "features", log)
    norm_pair = get_layout(base.data.layout).norm_pair
    results, gradients, measured = [], [], set()
    json_path = out_dir / "probe.json"
    for spec in specs:
        model, extra = parse_spec(spec)
        cfg = compose("train", [*overrides, f"model={model}", *extra])
        for seed in seeds:
            setup = build_head(cfg, seed)
            if setup.head_key == "decimal" and model not in measured:
                measured.add(model)
                for loss in GRADIENT_LOSSES:
                    fresh = build_head(cfg, seed)
                    g = gradient_at_last_layer(fresh, train, {**fresh.loss, **loss}, batch_size=batch_size)
                    gradients.append({"spec": spec, **loss, "grad_last_layer_at_init": g})
                    log(f"{spec}: gradient at the last layer at init, {loss}: {g:.3e}")
            result = train_head(
                setup,
                train,
                test,
                norm_pair,
                steps=steps,
                seed=seed,
                lr=lr,
                batch_size=batch_size,
                eval_every=eval_every,
                log=log,
            )
            row = {"spec": spec, **result.row()}
            results.append(row)
            log(
                f"{spec} seed {seed}: test {result.signal} {result.test_signal:.4f} (train {result.train_signal:.4f}), "
                f"gain {result.gain:+.3f} NME, grad {result.grad_last_layer:.3e}, {result.wall_s:.0f} s"
            )
            json_path.write_text(json.dumps({"results": results, "gradients": gradients}, indent=1))
    summary = {"results": results, "gradients": gradients, "table": table(results), "ckpt": str(ckpt)}
    json_path.write_text(json.dumps(summary, indent=1))
    (out_dir / "probe.md").write_text(markdown(summary, steps, overrides, batch_size, lr))
    return summary


def table(results: Sequence[dict]) -> list[dict]:
    """One row per spec: mean and 95 % t-interval over seeds of the signal and the gain."""
    rows = []
    for spec in dict.fromkeys(r["spec"] for r in results):
        runs = [r for r in results if r["spec"] == spec]
        signal, signal_ci = t_interval([r["test_signal"] for r in runs])
        gain, gain_ci = t_interval([r["gain"] for r in runs])
        train_signal, _ = t_interval([r["train_signal"] for r in runs])
        rows.append(
            {
                "spec": spec,
                "signal": runs[0]["signal"],
                "seeds": len(runs),
                "test_signal": signal,
                "test_signal_ci": signal_ci,
                "train_signal": train_signal,
                "chance": runs[0]["chance"],
                "gain": gain,
                "gain_ci": gain_ci,
                "nme": statistics.fmean(r["test_nme"] for r in runs),
                "nme_integer": statistics.fmean(r["test_nme_integer"] for r in runs),
                "grad_last_layer": statistics.fmean(r["grad_last_layer"] for r in runs),
                "wall_s": sum(r["wall_s"] for r in runs),
            }
        )
    return rows


def markdown(summary: dict, steps: int, overrides: Sequence[str], batch_size: int, lr: float) -> str:
    lines = [
        f"Head probes on cached features of {summary['ckpt']}",
        f"({steps} steps of batch {batch_size} per run, Adam {lr:g}; overrides: {' '.join(overrides)})",
        "",
        "| head:loss | seeds | test signal (x chance) | train signal | gain (NME) ± 95 % | NME | integer only "
        "| grad at last layer (first 50 steps) | wall (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["table"]:
        x = f" ({r['test_signal'] / r['chance']:.1f}x)" if r["chance"] else ""
        lines.append(
            f"| {r['spec']} | {r['seeds']} | {r['signal']} {r['test_signal']:.4f} ± {r['test_signal_ci']:.4f}{x} "
            f"| {r['train_signal']:.4f} | {r['gain']:+.3f} ± {r['gain_ci']:.3f} | {r['nme']:.3f} "
            f"| {r['nme_integer']:.3f} | {r['grad_last_layer']:.2e} | {r['wall_s']:.0f} |"
        )
    if summary["gradients"]:
        lines += ["", "| head | loss | weight | grad at last layer at init |", "|---|---|---|---|"]
        for g in summary["gradients"]:
            lines.append(f"| {g['spec']} | {g['decimal_loss']} | {g['head']} | {g['grad_last_layer_at_init']:.3e} |")
    return "\n".join(lines) + "\n"


#: The end-to-end runs' test metrics that :func:`multirun_table` summarises over seeds (the decimal heads'
#: or the offset heads', whichever a run has).
MULTIRUN_KEYS = (
    "test/nme",
    "test/nme_integer",
    "test/decimal_acc",
    "test/decimal_gain",
    "test/offset_err",
    "test/offset_gain",
)


def multirun_table(multirun_dirs: Sequence[str | Path], group: str = "+sweep/decimal_recipe") -> list[dict]:
    """hih-train multirun jobs as one row per grid point (:func:`hih.analysis.seed_curves.multirun_rows`,
    named by its ``group`` override: the run's file), each metric's mean and 95 % t-interval over the
    seeds; jobs without metrics (failed, running, not started) are counted as missing."""
    rows = []
    for name, row in multirun_rows(multirun_dirs, group):
        out: dict = {"run": name, "seeds": len(row.completed), "missing": len(row.runs) - len(row.completed)}
        if row.completed:
            walls = (wall_seconds(read_status(r.path)) for r in row.completed if r.path is not None)
            out["wall_s"] = sum(w for w in walls if w is not None)
        for key in MULTIRUN_KEYS:
            stats = row.stats(key)
            if stats.n:
                half = stats.half_width()
                out[key], out[key + "_ci"] = stats.mean, math.nan if half is None else half
        rows.append(out)
    return rows


def multirun_markdown(rows: Sequence[dict], chance: float | None = None) -> str:
    """:func:`multirun_table`'s rows as the docs' table: mean ± 95 % t-interval over seeds; the head's
    signal is decimal accuracy (x ``chance``) or offset error in cells, its gain the one it has."""

    def cell(row: dict, key: str, sign: str = "", digits: int = 3) -> str:
        if key not in row:
            return "-"
        if math.isnan(row[key + "_ci"]):  # one seed: no interval
            return f"{row[key]:{sign}.{digits}f}"
        return f"{row[key]:{sign}.{digits}f} ± {row[key + '_ci']:.{digits}f}"

    lines = [
        "| run | seeds (missing) | test NME ± 95 % | integer only | decimal acc (x chance) / offset err (cells) "
        "| gain (NME) ± 95 % | wall (s, all seeds) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "test/decimal_acc" in r:
            x = f" ({r['test/decimal_acc'] / chance:.2f}x)" if chance else ""
            signal = cell(r, "test/decimal_acc", digits=4) + x
            gain = cell(r, "test/decimal_gain", "+")
        else:
            signal, gain = cell(r, "test/offset_err", digits=4), cell(r, "test/offset_gain", "+")
        lines.append(
            f"| {r['run']} | {r['seeds']} ({r.get('missing', 0)}) | {cell(r, 'test/nme')} "
            f"| {cell(r, 'test/nme_integer')} | {signal} | {gain} | {r.get('wall_s', 0):.0f} |"
        )
    return "\n".join(lines) + "\n"
