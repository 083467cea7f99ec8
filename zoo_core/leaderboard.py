"""Leaderboards from the results database: one row per spec, marginals per component, plots.

Runs of one spec that differ only in their seed form a :class:`Group`; its
metrics are the mean and standard deviation over those seeds. Nothing here
imports TensorFlow, so ``zoo leaderboard`` answers at once.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo_core.config import KINDS, DataConfig, RunSpec, TrainConfig
from zoo_core.errors import ZooError
from zoo_core.results import RunRecord
from zoo_core.tables import MACHINE_FORMATS

# Sort keys: record attribute and whether bigger is better.
SORT_METRICS: dict[str, tuple[str, bool]] = {
    "test_accuracy": ("test_accuracy", True),
    "test_auc": ("test_auc", True),
    "test_loss": ("test_loss", False),
    "val_accuracy": ("val_accuracy", True),
    "val_auc": ("val_auc", True),
    "val_loss": ("val_loss", False),
    "params": ("params", False),
    "time": ("wall_time", False),
    "tokens_per_sec": ("tokens_per_sec", True),
}
TEXT_DIGITS = 4


@dataclasses.dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation over the values present (None when there are none)."""

    mean: float | None
    std: float | None
    n: int
    values: tuple[float, ...] = ()
    bounds: tuple[float, float] | None = None  # the metric's range, e.g. (0, 1) for accuracy

    @classmethod
    def of(cls, values: Iterable[float | None], bounds: tuple[float, float] | None = None) -> "Stat":
        present = tuple(float(v) for v in values if v is not None)
        if not present:
            return cls(None, None, 0, (), bounds)
        std = statistics.stdev(present) if len(present) > 1 else None
        return cls(statistics.fmean(present), std, len(present), present, bounds)

    @property
    def ci95(self) -> tuple[float, float] | None:
        """The 95% confidence interval of the mean, ``mean ± t(0.975, n-1) std / sqrt(n)``.

        Student's t interval over the seeds (SciPy's ``t.ppf``), cut to the
        metric's :attr:`bounds` (with two seeds ``t = 12.7``, so an accuracy's
        interval can reach past 0 or 1, which no mean can); None with fewer
        than two values, where it is undefined.
        """
        if self.std is None:
            return None
        from scipy import stats

        half = float(stats.t.ppf(0.975, self.n - 1)) * self.std / self.n ** 0.5
        low, high = self.mean - half, self.mean + half
        if self.bounds is not None:
            low, high = max(low, self.bounds[0]), min(high, self.bounds[1])
        return low, high

    def text(self, digits: int = TEXT_DIGITS) -> str:
        """``0.8530 ± 0.0041``, ``0.8530 (1 seed)`` for one value, ``-`` for none."""
        if self.mean is None:
            return "-"
        if self.std is None:
            return f"{self.mean:.{digits}f} (1 seed)"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"

    def ci_text(self, digits: int = TEXT_DIGITS) -> str:
        """``[0.8428, 0.8632]``, or ``-`` where the interval is undefined."""
        ci = self.ci95
        return "-" if ci is None else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


#: Rows whose one-sided Welch test against the leader gives p at least this
#: are marked as not significantly worse (ties shown as ties).
SIGNIFICANCE = 0.05


def p_worse_than_leader(leader: Stat, other: Stat, higher_is_better: bool) -> float | None:
    """One-sided p-value of Welch's t-test that ``other``'s seeds score worse than ``leader``'s.

    Welch (1947), through ``scipy.stats.ttest_ind(equal_var=False)``. None
    where the test is undefined: fewer than two seeds on either side. Two
    rows with identical values (zero variance) give p = 1 (a tie) when their
    means are equal and p = 0 otherwise.
    """
    if leader.n < 2 or other.n < 2:
        return None
    if leader.std == 0 and other.std == 0:
        worse = other.mean < leader.mean if higher_is_better else other.mean > leader.mean
        return 0.0 if worse else 1.0
    import warnings

    from scipy import stats

    with warnings.catch_warnings():  # nearly equal seeds: SciPy warns of precision loss, the p-value stands
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(leader.values, other.values, equal_var=False,
                                 alternative="greater" if higher_is_better else "less")
    return float(result.pvalue)


def versus_leader(p_value: float | None, is_leader: bool) -> str:
    """The text of the ``vs leader`` column: ``leader``, ``tied (p=0.31)``, ``worse (p=0.002)`` or ``1 seed``."""
    if is_leader:
        return "leader"
    if p_value is None:
        return "untested (1 seed)"
    return f"{'tied' if p_value >= SIGNIFICANCE else 'worse'} (p={p_value:.2g})"


@dataclasses.dataclass(frozen=True)
class Group:
    """The finished runs of one spec, one per seed."""

    key: str
    runs: tuple[RunRecord, ...]

    @functools.cached_property
    def spec(self) -> RunSpec:
        return self.runs[0].spec

    @property
    def label(self) -> str:
        return self.runs[0].label

    @property
    def seeds(self) -> list[int]:
        return sorted(r.seed for r in self.runs)

    @property
    def is_ensemble(self) -> bool:
        """Whether this row is an ensemble of runs (``zoo ensemble``), which has a group of its own."""
        return self.runs[0].is_ensemble

    def stat(self, attribute: str) -> Stat:
        """``attribute`` over the seeds; accuracies and AUCs carry their range [0, 1]."""
        bounded = attribute.endswith(("_accuracy", "_auc"))
        return Stat.of((getattr(r, attribute) for r in self.runs), bounds=(0.0, 1.0) if bounded else None)

    def best_run(self, attribute: str = "test_accuracy") -> RunRecord:
        """The seed with the best value of ``attribute`` (higher is better)."""
        return max(self.runs, key=lambda r: (getattr(r, attribute) is not None, getattr(r, attribute) or 0.0))


# -- selecting and grouping ---------------------------------------------------
def matches(record: RunRecord, patterns: Sequence[str] = (), components: Mapping[str, str | None] | None = None) -> bool:
    """Whether a run matches any fnmatch pattern (on its label or combination) and every component filter."""
    combo = "/".join((record.encoder, record.cell, record.aggregator, record.head))
    if patterns and not any(fnmatch.fnmatchcase(record.label, p) or fnmatch.fnmatchcase(combo, p) for p in patterns):
        return False
    for kind, wanted in (components or {}).items():
        if wanted and not fnmatch.fnmatchcase(getattr(record, kind), wanted):
            return False
    return True


@dataclasses.dataclass(frozen=True)
class Setup:
    """Finished runs with the same data and training settings and the same data: the runs that may be compared.

    A setup is everything about a run except its model and its seed
    (:meth:`RunSpec.setup_key`), plus the checksum of the data it read, so a
    run at ``--limit 2000`` and one at 5000 reviews, or one on Keras' npz and
    one on Stanford's archive, are never ranked together.
    """

    key: str
    records: tuple[RunRecord, ...]

    @property
    def latest(self) -> str:
        """When its most recent run finished (ISO 8601)."""
        return max(r.finished_at or r.started_at for r in self.records)

    def describe(self, defaults: RunSpec) -> str:
        """What differs from the defaults, e.g. ``limit=2000, epochs=1``, or ``defaults``."""
        return _describe(_setup(self.records[0].spec, defaults))


def setup_key(record: RunRecord) -> str:
    """The 8-character id of a run's setup (:class:`Setup`)."""
    import hashlib

    return hashlib.sha256(f"{record.spec.setup_key()}:{record.data_checksum}".encode()).hexdigest()[:8]


def split_setups(records: Iterable[RunRecord]) -> list[Setup]:
    """Runs grouped by setup, the setup with the most recently finished run first."""
    by_key: dict[str, list[RunRecord]] = {}
    for record in records:
        by_key.setdefault(setup_key(record), []).append(record)
    return sorted((Setup(k, tuple(v)) for k, v in by_key.items()), key=lambda s: s.latest, reverse=True)


def select_setup(records: Iterable[RunRecord], wanted: str | None = None) -> tuple[Setup, list[Setup]]:
    """One setup and the others: ``wanted`` is a setup id or unique prefix, or None/``latest`` for the
    setup of the most recently finished run.

    Raises:
        ZooError: No runs, or no (or more than one) setup matching ``wanted``; the message lists the setups.
    """
    found = split_setups(records)
    if not found:
        raise ZooError("no finished runs to compare")
    if wanted in (None, "", "latest"):
        return found[0], found[1:]
    chosen = [s for s in found if s.key.startswith(wanted)]
    if len(chosen) != 1:
        ids = ", ".join(f"{s.key} ({len(s.records)} runs)" for s in found)
        problem = "no setup" if not chosen else "more than one setup"
        raise ZooError(f"{problem} matches --setup {wanted!r}; setups: {ids} (or `--setup all`)")
    return chosen[0], [s for s in found if s is not chosen[0]]


def setup_caption(chosen: Setup, others: Sequence[Setup], defaults: RunSpec) -> str:
    """``setup 1a2b3c4d (limit=2000, epochs=1); 7 runs of 2 other setups left out (...)``."""
    text = f"setup {chosen.key} ({chosen.describe(defaults)})"
    if others:
        runs = sum(len(s.records) for s in others)
        text += (f"; {runs} run{'s' * (runs != 1)} of {len(others)} other setup{'s' * (len(others) != 1)} "
                 f"left out ({', '.join(s.key for s in others)}; `--setup ID` picks one, `--setup all` shows each)")
    return text


def group_runs(records: Iterable[RunRecord]) -> list[Group]:
    """Groups finished runs by spec (everything but the seed), in first-seen order."""
    groups: dict[str, list[RunRecord]] = {}
    for record in records:
        groups.setdefault(record.group_key, []).append(record)
    return [Group(key, tuple(sorted(runs, key=lambda r: r.seed))) for key, runs in groups.items()]


def best_run_ids(records: Iterable[RunRecord]) -> set[str]:
    """Ids of the runs a leaderboard row can point to: each spec's ``best_run`` in every setup.

    Also over all setups at once (as ``zoo rank`` shows its own runs), so no
    leaderboard of these records points to a run outside the set.
    """
    records = list(records)
    ids = {g.best_run().id for g in group_runs(records)}
    for setup in split_setups(records):
        ids.update(g.best_run().id for g in group_runs(setup.records))
    return ids


def sort_groups(groups: Iterable[Group], metric: str = "test_accuracy") -> list[Group]:
    """Best first by the mean of ``metric``; groups without it go last."""
    if metric not in SORT_METRICS:
        raise ZooError(f"unknown sort metric {metric!r} (metrics: {', '.join(SORT_METRICS)})")
    attribute, higher_is_better = SORT_METRICS[metric]

    def order(group: Group):
        mean = group.stat(attribute).mean
        if mean is None:
            return (1, 0.0, group.label)
        return (0, -mean if higher_is_better else mean, group.label)

    return sorted(groups, key=order)


# -- describing what differs between rows ----------------------------------
def _flatten_params(spec: RunSpec) -> dict[str, Any]:
    """The model's hyperparameters, ``{"cell.units": 64}``, and its tuned settings, ``{"lr": 0.0031}``."""
    params = {f"{kind}.{name}": value for kind, values in sorted(spec.model.params.items())
              for name, value in values.items()}
    for setting in spec.tuned:
        section, _, name = setting.partition(".")
        value = getattr(getattr(spec, section), name)
        params[name] = float(f"{value:.4g}") if isinstance(value, float) else value  # as `zoo tune` shows it
    return params


def _setup(spec: RunSpec, defaults: RunSpec) -> dict[str, Any]:
    """The data and training settings that differ from the defaults, e.g. ``{"epochs": 1, "limit": 2000}``;
    a setting tuned per model (:attr:`RunSpec.tuned`) shows as ``{"lr": "tuned"}``."""
    out = {}
    tuned = {setting.partition(".")[2] for setting in spec.tuned}
    for section in ("data", "train"):
        given, base = dataclasses.asdict(getattr(spec, section)), dataclasses.asdict(getattr(defaults, section))
        out.update({k: "tuned" if k in tuned else v for k, v in given.items()
                    if k != "source" and (k in tuned or v != base.get(k))})
    return out


def _describe(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "defaults"


def _split_common(per_row: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Separates the items every row shares from those that vary."""
    if not per_row:
        return {}, []
    common = {k: v for k, v in per_row[0].items() if all(row.get(k, object()) == v for row in per_row)}
    return common, [{k: v for k, v in row.items() if k not in common} for row in per_row]


def default_run(data: DataConfig | None = None, train: TrainConfig | None = None) -> RunSpec:
    """A reference RunSpec holding the defaults that setups are described against."""
    from zoo_core.config import ModelSpec

    return RunSpec(ModelSpec("-", "-", "-", "-"), data or DataConfig(), train or TrainConfig())


# -- tables -----------------------------------------------------------------
@dataclasses.dataclass
class Table:
    """Headers, rows and a caption line (for text formats: what every row shares)."""

    headers: list[str]
    rows: list[list[Any]]
    caption: str = ""


@dataclasses.dataclass(frozen=True)
class Board:
    """What every row of one leaderboard shares: the format, the ranking metric and which optional columns show."""

    metric: str
    ranked_by: str
    numeric: bool  # csv/json: separate numbers and every column; text: what a reader compares
    shown: tuple[str, ...]  # the metrics given a column
    ci_inline: bool  # text: the ranking metric's CI goes in its own cell (``0.853 ± 0.004 [0.843, 0.863]``)
    show_params: bool
    show_setup: bool
    defaults: RunSpec


@dataclasses.dataclass(frozen=True)
class Row:
    """One ranked spec: its group, rank, the p-value against the leader and what it does not share with the rest."""

    rank: int
    group: Group
    p_value: float | None
    own_params: dict[str, Any]
    own_setup: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Column:
    """One leaderboard column, declared once: its header(s) and its cell(s), for text and machine formats.

    Attributes:
        headers: The column's header(s) on a :class:`Board` (several for a column that csv/json split, like
            ``test_accuracy_mean`` and ``test_accuracy_std``; none hides the column).
        cells: A row's values, one per header.
    """

    headers: Any  # Callable[[Board], list[str]]
    cells: Any  # Callable[[Board, Row], list[Any]]


def _metric_headers(board: Board) -> list[str]:
    return [h for name in board.shown for h in
            ((f"{name}_mean", f"{name}_std") if board.numeric else (name.replace("_", " "),))]


def _metric_cells(board: Board, row: Row) -> list[Any]:
    cells: list[Any] = []
    for attribute in board.shown:
        stat = row.group.stat(attribute)
        inline = f" {stat.ci_text()}" if board.ci_inline and attribute == board.ranked_by and stat.ci95 else ""
        text = stat.text().replace("(1 seed)", "(ensemble)") if row.group.is_ensemble else stat.text()
        cells += [_round(stat.mean), _round(stat.std)] if board.numeric else [text + inline]
    return cells


def _versus_headers(board: Board) -> list[str]:
    if board.numeric:
        return [f"{board.metric}_ci95_low", f"{board.metric}_ci95_high", "p_worse_than_leader", "tied_with_leader"]
    return [f"{board.metric.replace('_', ' ')} 95% CI"] * (not board.ci_inline) + ["vs leader"]


def _versus_cells(board: Board, row: Row) -> list[Any]:
    stat = row.group.stat(board.ranked_by)
    leader = row.rank == 1
    if board.numeric:
        ci = stat.ci95
        tied = True if leader else (None if row.p_value is None else row.p_value >= SIGNIFICANCE)
        return [_round(ci[0]) if ci else None, _round(ci[1]) if ci else None, _round(row.p_value), tied]
    return [stat.ci_text()] * (not board.ci_inline) + [versus_leader(row.p_value, leader)]


def _own(board: Board, everything: dict[str, Any], own: dict[str, Any]) -> str:
    # csv/json repeat every row's full values; text shows only what differs between rows.
    return _describe(everything) if board.numeric else (_describe(own) if own else "")


#: The leaderboard's columns, in order; each declared once, headers beside cells.
LEADERBOARD_COLUMNS: tuple[Column, ...] = (
    Column(lambda b: ["rank"], lambda b, r: [r.rank]),
    Column(lambda b: ["model"], lambda b, r: [r.group.label]),
    Column(lambda b: list(KINDS) if b.numeric else [], lambda b, r: [getattr(r.group.spec.model, k) for k in KINDS]),
    Column(_metric_headers, _metric_cells),
    Column(lambda b: ["test_loss"] if b.numeric else [], lambda b, r: [_round(r.group.stat("test_loss").mean)]),
    Column(_versus_headers, _versus_cells),
    Column(lambda b: ["seeds"], lambda b, r: [len(r.group.runs)]),
    Column(lambda b: ["params"], lambda b, r: [r.group.runs[0].params]),
    Column(lambda b: ["time_s"], lambda b, r: [_round(r.group.stat("wall_time").mean, 1)]),
    Column(lambda b: ["tokens_per_s"] if b.numeric else [],
           lambda b, r: [_round(r.group.stat("tokens_per_sec").mean, 0)]),
    Column(lambda b: ["hyperparameters"] if b.show_params else [],
           lambda b, r: [_own(b, _flatten_params(r.group.spec), r.own_params)]),
    Column(lambda b: ["setup"] if b.show_setup else [],
           lambda b, r: [_describe(_setup(r.group.spec, b.defaults)) if b.numeric else _describe(r.own_setup)]),
    Column(lambda b: ["best_run"], lambda b, r: [r.group.best_run().id]),
)


def leaderboard(groups: Sequence[Group], metric: str, fmt: str, defaults: RunSpec) -> Table:
    """One row per spec, ranked by ``metric``; the columns are :data:`LEADERBOARD_COLUMNS`.

    Text formats show ``mean ± std`` and move what every row shares into the
    caption; csv and json give separate mean and std numbers and every column.
    """
    groups = sort_groups(groups, metric)
    numeric = fmt in MACHINE_FORMATS
    params = [_flatten_params(g.spec) for g in groups]
    setups = [_setup(g.spec, defaults) for g in groups]
    common_params, own_params = _split_common(params)
    common_setup, own_setup = _split_common(setups)
    ranked_by, higher_is_better = SORT_METRICS[metric]
    # Text formats keep what a reader compares (so the table fits a terminal); csv and json keep everything.
    shown = ("test_accuracy", "test_auc", "val_accuracy") if numeric else ("test_accuracy", "test_auc")
    board = Board(metric=metric, ranked_by=ranked_by, numeric=numeric, shown=shown,
                  ci_inline=not numeric and ranked_by in shown, show_params=numeric or any(own_params),
                  show_setup=numeric or any(own_setup), defaults=defaults)

    leader = groups[0].stat(ranked_by) if groups else Stat.of(())
    columns = [(column, column.headers(board)) for column in LEADERBOARD_COLUMNS]
    headers = [h for _, column_headers in columns for h in column_headers]
    rows = []
    for rank, (group, own_p, own_s) in enumerate(zip(groups, own_params, own_setup), start=1):
        p_value = None if rank == 1 else p_worse_than_leader(leader, group.stat(ranked_by), higher_is_better)
        row = Row(rank, group, p_value, own_p, own_s)
        rows.append([cell for column, column_headers in columns if column_headers
                     for cell in column.cells(board, row)])

    caption = ""
    if not numeric:
        parts = []
        if common_params:
            parts.append(f"hyperparameters: {_describe(common_params)}")
        if common_setup or not board.show_setup:
            parts.append(f"setup: {_describe(common_setup)}")
        ci = "[95% CI]" if board.ci_inline else "95% CI"
        if any(g.is_ensemble for g in groups):
            parts.append("ensemble rows: the mean P(positive) of their member runs, scored once; their params and "
                         "time are their members' sums")
        parts.append(f"ranked by {metric.replace('_', ' ')} (mean ± std over seeds; {ci} of the mean, Student's t; "
                     f"'tied': not significantly worse than the leader, one-sided Welch t-test, p ≥ {SIGNIFICANCE})")
        caption = "; ".join(parts)
    return Table(headers, rows, caption)


def marginal(groups: Sequence[Group], kind: str, metric: str, fmt: str) -> Table:
    """Each option of ``kind`` averaged over every spec that uses it.

    Every spec counts once (its mean over seeds), so a spec run with more
    seeds does not weigh more. The comparison is only as fair as the grid is
    balanced: average over a full grid (e.g. the ``seed-grid`` preset).
    Ensembles (``zoo ensemble``) are left out: they are no option of any kind.
    """
    if kind not in KINDS:
        raise ZooError(f"--by takes one of {', '.join(KINDS)}, not {kind!r}")
    groups = [g for g in groups if not g.is_ensemble]
    attribute, higher_is_better = SORT_METRICS.get(metric, SORT_METRICS["test_accuracy"])
    numeric = fmt in MACHINE_FORMATS
    by_option: dict[str, list[Group]] = {}
    for group in groups:
        by_option.setdefault(getattr(group.spec.model, kind), []).append(group)

    def spec_means(option_groups: list[Group], attr: str) -> Stat:
        return Stat.of(g.stat(attr).mean for g in option_groups)

    def order(item):
        mean = spec_means(item[1], attribute).mean
        return (mean is None, 0.0 if mean is None else (-mean if higher_is_better else mean), item[0])

    headers = ["rank", kind, "models", "runs"]
    headers += ([f"{m}_{s}" for m in ("test_accuracy", "val_accuracy") for s in ("mean", "std")] if numeric
                else ["test accuracy", "val accuracy"])
    headers += ["best_test_accuracy", "best_model", "params_mean", "time_s_mean"]
    rows = []
    for rank, (option, option_groups) in enumerate(sorted(by_option.items(), key=order), start=1):
        row: list[Any] = [rank, option, len(option_groups), sum(len(g.runs) for g in option_groups)]
        for attr in ("test_accuracy", "val_accuracy"):
            stat = spec_means(option_groups, attr)
            row += [_round(stat.mean), _round(stat.std)] if numeric else [stat.text()]
        best = sort_groups(option_groups, "test_accuracy")[0]
        row += [
            _round(best.stat("test_accuracy").mean),
            best.label,
            _round(Stat.of(g.runs[0].params for g in option_groups).mean, 0),
            _round(spec_means(option_groups, "wall_time").mean, 1),
        ]
        rows.append(row)
    caption = "" if numeric else (
        f"each {kind} averaged over the specs that use it (mean ± std across specs, each spec's mean over its seeds)")
    return Table(headers, rows, caption)


def runs_table(records: Sequence[RunRecord], fmt: str) -> Table:
    """Every run, one row each: id, model, seed, status, metrics, when and where.

    Text formats leave out the parameter count and the host and shorten the
    start time, so the table fits a terminal, and mark an ensemble's status
    ``(ensemble of K)``; csv and json keep everything, an ensemble's member
    ids (space-separated) in ``members``.
    """
    numeric = fmt in MACHINE_FORMATS
    headers = ["id", "model", "seed", "status", "test_accuracy", "val_accuracy"]
    headers += ["params", "time_s", "started", "host", "run_dir", "pruned_at", "members"] if numeric \
        else ["time_s", "started", "message"]
    rows = []
    for r in records:
        status = r.status + (f" ({r.train_status})" if r.train_status and r.train_status != "completed" else "")
        if r.is_ensemble and not numeric:
            status += f" (ensemble of {len(r.members)})"
        if r.pruned_at and not numeric:
            status += ", weights pruned"
        row = [r.id, r.label, r.seed, status, _round(r.test_accuracy), _round(r.val_accuracy)]
        if numeric:
            row += [r.params, _round(r.wall_time, 1), r.started_at[:19].replace("T", " "), r.host, r.run_dir,
                    r.pruned_at, " ".join(r.members)]
        else:
            row += [_round(r.wall_time, 1), r.started_at[5:16].replace("T", " "), r.message]
        rows.append(row)
    return Table(headers, rows)


def _round(value: float | None, digits: int = TEXT_DIGITS) -> float | int | None:
    if value is None:
        return None
    return int(round(value)) if digits == 0 else round(value, digits)


# -- plots --------------------------------------------------------------------
def short_labels(groups: Sequence[Group]) -> list[str]:
    """Labels without the components every plotted spec shares (a named model keeps its name)."""
    combos = [[getattr(g.spec.model, k) for k in KINDS] for g in groups]
    varying = [i for i in range(len(KINDS)) if len({c[i] for c in combos}) > 1] or list(range(len(KINDS)))
    return [g.spec.model.name or "/".join(c[i] for i in varying) for g, c in zip(groups, combos)]


def colour_kind(groups: Sequence[Group]) -> str:
    """The component kind to colour points by: the first of cell, aggregator, encoder, head that varies."""
    for kind in ("cell", "aggregator", "encoder", "head"):
        if len({getattr(g.spec.model, kind) for g in groups}) > 1:
            return kind
    return "cell"


def cluster_labels(points: Sequence[tuple[float, float, str]], x_range: tuple[float, float],
                   y_range: tuple[float, float], near: float = 0.02,
                   sep: str = ",") -> list[tuple[float, float, str]]:
    """Merges the labels of points closer than ``near`` (a fraction of each axis) into one label,
    joined by ``sep``: points drawn on top of each other get one label, not a pile."""
    clusters: list[list[Any]] = []
    width = (x_range[1] - x_range[0]) or 1.0
    height = (y_range[1] - y_range[0]) or 1.0
    for x, y, label in sorted(points, key=lambda p: (-p[1], p[0])):
        for cluster in clusters:
            if abs(cluster[0] - x) / width < near and abs(cluster[1] - y) / height < near:
                cluster[2].append(label)
                break
        else:
            clusters.append([x, y, [label]])
    return [(x, y, sep.join(labels)) for x, y, labels in clusters]


def _label_spots() -> list[tuple[float, float, str, str]]:
    """Offsets (points) and alignments to try for a point's label, nearest first: right, left, above, below,
    then the diagonals, on rings further and further out."""
    spots = []
    for r in (5, 11, 18, 26, 36):
        spots += [(r, 0, "left", "center"), (-r, 0, "right", "center"), (0, r, "center", "bottom"),
                  (0, -r, "center", "top"), (r * 0.7, r * 0.7, "left", "bottom"), (r * 0.7, -r * 0.7, "left", "top"),
                  (-r * 0.7, r * 0.7, "right", "bottom"), (-r * 0.7, -r * 0.7, "right", "top")]
    return spots


LABEL_SPOTS = tuple(_label_spots())


def place_labels(ax, texts: Sequence[tuple[float, float, str]], avoid: Sequence[Any] = (),
                 fontsize: float = 8) -> list[Any]:
    """Annotates points, moving each label around its point until it stays inside the axes and overlaps
    neither a label already placed nor a box in ``avoid`` (display coordinates, e.g. the markers).

    A label placed away from its point gets a thin line to it. Where every spot is taken, the label goes
    to the first spot. Returns the annotations.
    """
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    placed, notes = list(avoid), []
    line = {"arrowstyle": "-", "lw": 0.5, "color": "0.4", "shrinkA": 0, "shrinkB": 3}

    def annotate(x, y, text, dx, dy, ha, va):
        far = (dx * dx + dy * dy) ** 0.5 > 12
        return ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=fontsize,
                           ha=ha, va=va, arrowprops=line if far else None)

    for x, y, text in texts:
        for spot in LABEL_SPOTS:
            note = annotate(x, y, text, *spot)
            box = note.get_window_extent(renderer)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(other) for other in placed):
                break
            note.remove()
        else:  # crowded everywhere: the nearest spot, overlapping
            note = annotate(x, y, text, *LABEL_SPOTS[0])
            box = note.get_window_extent(renderer)
        placed.append(box)
        notes.append(note)
    return notes


#: What the error bars of :func:`plot` show, printed on the figure.
ERROR_BARS = ("error bars: 95% confidence interval of the mean over seeds (Student's t), drawn for specs with "
              "2 or more seeds and cut to [0, 1]; a point without a bar has a single seed")


def _compact(value: float, _position=None) -> str:
    """A tick label: ``1.17M``, ``250k``, ``20``, ``0.5``."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.4g}{suffix}"
    return f"{value:g}"


def plot_figure(groups: Sequence[Group], title: str = "", metric: str = "test_accuracy"):
    """Draws test accuracy against parameters and against training time: a matplotlib ``Figure``.

    ``groups`` come in rank order (by ``metric``). Each spec is one point
    (its mean over seeds), numbered with its rank and listed by number in a
    side table, so labels never pile up on crowded points; points on top of
    each other share one label (``3,7``). A spec with two or more seeds gets
    an error bar, the 95% confidence interval of the mean (:attr:`Stat.ci95`,
    Student's t); one with a single seed gets none. Points are coloured by
    the component that varies (see :func:`colour_kind`). Neither x axis
    starts below zero. Uses matplotlib's object API on an Agg canvas: no
    display and no global backend.

    Raises:
        ZooError: If no group has a test accuracy.
    """
    import math

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, MaxNLocator
    from matplotlib.transforms import Bbox, offset_copy

    ranked = [(rank, g) for rank, g in enumerate(groups, start=1) if g.stat("test_accuracy").mean is not None]
    if not ranked:
        raise ZooError("nothing to plot: no finished run has a test accuracy")
    points = [g for _, g in ranked]
    labels = short_labels(points)
    kind = colour_kind(points)
    options = sorted({getattr(g.spec.model, kind) for g in points})
    colours = {o: f"C{i % 10}" for i, o in enumerate(options)}

    # The side table: monospaced lines, so its width follows the longest label.
    digits, label_width = len(str(ranked[-1][0])), max(len(label) for label in labels)
    table = [f"{'#':>{digits}}  {'model':<{label_width}}  test accuracy [95% CI]"]
    table += [f"{rank:>{digits}}  {label:<{label_width}}  {_accuracy_text(g.stat('test_accuracy'))}"
              for (rank, g), label in zip(ranked, labels)]
    side_inches = 0.5 + 0.07 * max(map(len, table))
    line_inches = 0.17
    lines = len(table) + len(options) + 4  # the table, the colour key and headings
    figure = Figure(figsize=(12.5 + side_inches, max(6.5, 2.0 + line_inches * lines)), dpi=120)
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(1, 3, width_ratios=(6.25, 6.25, side_inches))
    axes = [figure.add_subplot(grid[0, 0])]
    axes.append(figure.add_subplot(grid[0, 1], sharey=axes[0]))
    side = figure.add_subplot(grid[0, 2])
    side.set_axis_off()

    drawn_on = []  # (axes, [(x, y, number)]) labelled once the layout is final
    for ax, (attribute, xlabel) in zip(axes, (("params", "trainable parameters"), ("wall_time", "training time (s)"))):
        drawn = []
        for rank, group in ranked:
            x = group.stat(attribute).mean
            if x is None:
                continue
            acc = group.stat("test_accuracy")
            ci = acc.ci95
            ax.errorbar(x, acc.mean, yerr=None if ci is None else [[acc.mean - ci[0]], [ci[1] - acc.mean]],
                        fmt="o", color=colours[getattr(group.spec.model, kind)], capsize=3, markersize=6,
                        label=f"_rank {rank}")
            drawn.append((x, acc.mean, str(rank)))
        xs = [x for x, _, _ in drawn]
        log = bool(xs) and min(xs) > 0 and max(xs) / min(xs) > 10  # log only across orders of magnitude
        if log:
            ax.set_xscale("log")
        ax.margins(x=0.12, y=0.08)
        low, high = ax.get_xlim()
        if low < 0:  # the margin reached below zero, where no spec's parameters or time can be
            ax.set_xlim(0, high)
        drawn_on.append((ax, drawn, log))
        if not log:  # a few round ticks, so long numbers like 1,152,500 do not run into each other
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
        ax.xaxis.set_major_formatter(FuncFormatter(_compact))
        ax.set_title(f"test accuracy vs {xlabel}")
        ax.set_xlabel(xlabel + (" (log scale)" if log else ""))
        ax.grid(True, which="both", alpha=0.3)
    low, high = axes[0].get_ylim()
    axes[0].set_ylim(max(low, 0.0), min(high, 1.0))  # accuracy lives in [0, 1]
    axes[0].set_ylabel("test accuracy (mean over seeds)")

    def side_line(number: float, text: str, indent: float = 0.0, **style) -> None:
        at = offset_copy(side.transAxes, fig=figure, x=indent, y=-number * line_inches, units="inches")
        side.text(0, 1, text, transform=at, family="monospace", fontsize=8, va="top", **style)

    side_line(0, f"ranked by {metric.replace('_', ' ')}", fontweight="bold")
    side_line(1, table[0], indent=0.2, fontweight="bold")
    for i, ((_, group), row) in enumerate(zip(ranked, table[1:]), start=2):
        side_line(i, row, indent=0.2, gid="row")
        dot = offset_copy(side.transAxes, fig=figure, x=0.07, y=-(i + 0.4) * line_inches, units="inches")
        side.add_line(Line2D([0], [1], transform=dot, marker="o", markersize=5, linestyle="",
                             color=colours[getattr(group.spec.model, kind)]))
    key = len(table) + 2
    side_line(key, f"colour: {kind}", fontweight="bold")
    for i, option in enumerate(options, start=key + 1):
        side_line(i, option, indent=0.2)
        dot = offset_copy(side.transAxes, fig=figure, x=0.07, y=-(i + 0.4) * line_inches, units="inches")
        side.add_line(Line2D([0], [1], transform=dot, marker="o", markersize=5, linestyle="", color=colours[option]))
    figure.suptitle(title or f"rnn-zoo leaderboard: {len(points)} specs")
    figure.text(0.01, 0.01, "points: mean test accuracy over seeds, numbered by rank (see the table); "
                + ERROR_BARS, fontsize=8, va="bottom")
    figure.tight_layout(rect=(0, 0.04, 1, 1))

    # Numbers go on once the layout is final, beside their points and clear of every marker.
    radius = 4.5 * figure.dpi / 72  # a marker's radius, in pixels
    for ax, drawn, log in drawn_on:
        if not drawn:
            continue
        markers = [Bbox.from_extents(cx - radius, cy - radius, cx + radius, cy + radius)
                   for cx, cy in (ax.transData.transform((x, y)) for x, y, _ in drawn)]
        to_axis = math.log10 if log else float
        xs, ys = [to_axis(x) for x, _, _ in drawn], [y for _, y, _ in drawn]
        merged = cluster_labels([(to_axis(x), y, t) for x, y, t in drawn], (min(xs), max(xs)), (min(ys), max(ys)))
        place_labels(ax, [(10 ** x if log else x, y, ",".join(sorted(t.split(","), key=int))) for x, y, t in merged],
                     avoid=markers)
    return figure


def _accuracy_text(stat: Stat) -> str:
    """``0.831 [0.828, 0.834]``, or ``0.815 (1 seed)``: what a point and its error bar show."""
    return stat.text(3) if stat.ci95 is None else f"{stat.mean:.3f} {stat.ci_text(3)}"


def plot(groups: Sequence[Group], path: str | Path, title: str = "", metric: str = "test_accuracy") -> Path:
    """Writes :func:`plot_figure` to ``path`` (PNG, PDF or SVG, by its suffix); returns the path written.

    Raises:
        ZooError: Nothing to plot, or a path that cannot be written (see :func:`zoo_core.tables.image_path`).
    """
    from zoo_core.tables import image_path

    figure = plot_figure(groups, title, metric)
    path = image_path(path)
    figure.savefig(path, dpi=120)
    return path
