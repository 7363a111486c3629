"""Seeds: runs whose overrides differ only in ``seed`` are one :class:`Row`, with its statistics over
seeds (:class:`Stats`) and the paired difference to a reference row (:class:`Difference`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hih.analysis.report.runs import Run, override_value, run_labels
from hih.evaluation.keys import parse_key

SEED_KEY = "seed"
#: Overrides that choose seeds only: a job's grid point is its overrides less these (a sweep's
#: ``sweep.seeds=[3]`` run later into the same folder adds seeds to the same points).
SEED_KEYS = (SEED_KEY, "sweep.seeds")
#: Confidence of the paired intervals (t distribution over the seeds).
CONFIDENCE = 0.95
#: Default reference of the paired differences, when such a row exists.
DEFAULT_REF = "model=baseline"


def run_seed(run: Run) -> str | None:
    """The run's seed: its ``seed=`` override, else its config's ``seed``."""
    value = override_value(run.overrides, SEED_KEY)
    if value is None and run.config:
        value = run.config.get(SEED_KEY)
    return None if value is None else str(value)


def _point(run: Run) -> tuple[str, ...]:
    """The run's overrides less its seed (:data:`SEED_KEYS`): the grid point it belongs to."""
    return tuple(o for o in run.overrides if o.lstrip("+~").partition("=")[0] not in SEED_KEYS)


def redecoded_methods(run: Run, stage: str = "test") -> list[str]:
    """The methods a run was re-decoded with (keys ``<stage>/<metric>@<method>``), in logged order."""
    found: list[str] = []
    for key in run.metrics:
        parsed = parse_key(key)
        if parsed is not None and parsed.stage == stage and parsed.method is not None and parsed.method not in found:
            found.append(parsed.method)
    return found


def as_redecode(run: Run, method: str, stage: str = "test") -> Run:
    """``run`` as decoded by ``method``: its ``<metric>@<method>`` keys under the plain names.

    The same job (number, folder, seed, status) as ``run``: a failed training fails its re-decodes too.
    """
    metrics = {}
    for key, value in run.metrics.items():
        parsed = parse_key(key)
        if parsed is not None and parsed.method == method:
            metrics[str(parsed.with_(method=None))] = value
    status = run.status if run.status != "completed" or metrics else "no metrics"
    return Run(
        run.num,
        run.path,
        run.overrides,
        status,
        metrics,
        run.config,
        run.error,
        label=f"{run.label} → {method} (re-decode)",
    )


@dataclass
class Row:
    """One grid point: the runs whose overrides differ only in ``seed`` (one per seed, failed ones included).

    redecode: the method whose decode of these runs' network this row shows (None: the runs' own decode).
    """

    label: str
    runs: list[Run]
    redecode: str | None = None
    point: tuple[str, ...] = ()

    @property
    def model(self) -> str:
        own = next((r.model for r in self.runs if r.model), "")
        return f"{self.redecode} (re-decode of {own})" if self.redecode else own

    @property
    def completed(self) -> list[Run]:
        return [r for r in self.runs if r.status == "completed"]

    @property
    def seeds(self) -> list[str]:
        return [s for s in (run_seed(r) for r in self.runs) if s is not None]

    def values(self, key: str) -> dict[str, float]:
        """seed -> value of ``key`` over the completed runs that logged it (NaN left out)."""
        out = {}
        for r in self.completed:
            v = r.metrics.get(key)
            if v is not None and not math.isnan(v):
                out[run_seed(r) or f"job {r.num}"] = float(v)
        return out

    def stats(self, key: str) -> Stats:
        return Stats.of(list(self.values(key).values()))


@dataclass(frozen=True)
class Stats:
    """Mean, sample standard deviation (ddof=1; None for one value) and n of a metric over seeds."""

    mean: float | None
    std: float | None
    n: int

    @staticmethod
    def of(values: Sequence[float]) -> Stats:
        n = len(values)
        if not n:
            return Stats(None, None, 0)
        mean = math.fsum(values) / n
        std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
        return Stats(mean, std, n)

    def half_width(self, confidence: float = CONFIDENCE) -> float | None:
        """Half-width of the mean's t interval at ``confidence`` (None for fewer than 2 values)."""
        if self.n < 2:
            return None
        from scipy.stats import t

        return float(t.ppf(0.5 + confidence / 2, self.n - 1)) * self.std / math.sqrt(self.n)


@dataclass(frozen=True)
class Difference:
    """Row minus reference, paired by seed: mean difference, its 95 % t interval (None for < 2 pairs), n pairs."""

    mean: float | None
    low: float | None
    high: float | None
    n: int

    @property
    def significant(self) -> bool:
        """The interval excludes 0."""
        return self.low is not None and (self.low > 0 or self.high < 0)

    @staticmethod
    def paired(row: Mapping[str, float], ref: Mapping[str, float], confidence: float = CONFIDENCE) -> Difference:
        seeds = [s for s in row if s in ref]
        diffs = [row[s] - ref[s] for s in seeds]
        stats = Stats.of(diffs)
        half = stats.half_width(confidence)
        if half is None:
            return Difference(stats.mean, None, None, stats.n)
        return Difference(stats.mean, stats.mean - half, stats.mean + half, stats.n)


def group_runs(runs: Sequence[Run], stage: str = "test") -> list[Row]:
    """Runs -> rows: one per grid point (overrides less ``seed``), in job order, each followed by
    its re-decode rows (one per method its runs were re-decoded with)."""
    points: dict[tuple[str, ...], list[Run]] = {}
    for r in runs:  # the grid lists a not-started job's overrides in its own order
        points.setdefault(tuple(sorted(_point(r))), []).append(r)
    firsts = [members[0] for members in points.values()]
    stripped = [Run(r.num, r.path, list(_point(r)), r.status, config=r.config) for r in firsts]
    rows: list[Row] = []
    for members, first, label in zip(points.values(), stripped, run_labels(stripped)):
        point = tuple(first.overrides)
        rows.append(Row(label, members, None, point))
        methods: list[str] = []
        for r in members:
            methods += [m for m in redecoded_methods(r, stage) if m not in methods]
        for method in methods:
            rows.append(
                Row(f"{label} → {method} (re-decode)", [as_redecode(r, method, stage) for r in members], method, point)
            )
    return rows


def _parse_ref(ref: str) -> dict[str, str]:
    parsed = {}
    for part in str(ref).split():
        key, sep, value = part.lstrip("+~").partition("=")
        if not sep:
            raise ValueError(
                f"ref={ref!r}: expected override strings key=value "
                "(e.g. ref=model=baseline or ref='model=wsm labels=ours')"
            )
        parsed[key] = value
    return parsed


def reference_rows(rows: Sequence[Row], ref: str | None = None) -> dict[int, Row | None]:
    """Each row's reference (index -> row, None when it has none).

    ``ref``: override string(s) naming the reference (``model=baseline``; default: the baseline when
    a row has it, else no differences). A row's reference is the reference row at its own values of
    every other override (``model=hih_c labels=ours`` -> ``model=baseline labels=ours``); a re-decode
    row's may be its own training's row (``ref=model=baseline``: DARK's re-decode against argmax).
    """
    spec = _parse_ref(ref) if ref else None
    own_rows = [r for r in rows if r.redecode is None]
    if spec is None:
        default = _parse_ref(DEFAULT_REF)
        if not any(_matches(r.point, default) for r in own_rows):
            return {i: None for i in range(len(rows))}
        spec = default
    candidates = [r for r in own_rows if _matches(r.point, spec)]
    if not candidates:
        known = sorted({o for r in own_rows for o in r.point})
        raise ValueError(f"ref={ref!r} matches no row; the rows' overrides: {', '.join(known) or '(none)'}")
    out = {}
    for i, row in enumerate(rows):
        others = _without(row.point, spec)
        found = [c for c in candidates if _without(c.point, spec) == others]
        out[i] = found[0] if found else None
    return out


def _pairs(point: Sequence[str]) -> dict[str, str]:
    return dict(o.lstrip("+~").partition("=")[::2] for o in point)


def _matches(point: Sequence[str], spec: Mapping[str, str]) -> bool:
    pairs = _pairs(point)
    return all(pairs.get(k) == v for k, v in spec.items())


def _without(point: Sequence[str], spec: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in _pairs(point).items() if k not in spec}


def is_multi_seed(rows: Sequence[Row]) -> bool:
    """Some grid point has more than one job (seeds): the report aggregates."""
    return any(len(r.runs) > 1 for r in rows)
