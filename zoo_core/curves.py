"""Learning curves of recorded runs: a table and an overlay plot.

Every run keeps its per-epoch history in the results database
(``RunRecord.curves``: ``epoch``, ``train_loss``, ``train_accuracy``,
``val_loss``, ``val_accuracy``, ``val_auc``, ``seconds``, ``tokens_per_sec``).
Nothing here imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo_core.errors import ZooError

#: Columns of :func:`curves_table`, in order: (history key, header).
CURVE_COLUMNS = (("epoch", "epoch"), ("train_loss", "train loss"), ("val_loss", "val loss"),
                 ("train_accuracy", "train acc"), ("val_accuracy", "val acc"), ("val_auc", "val auc"),
                 ("seconds", "seconds"))


def curves_table(records: Sequence[Any]) -> tuple[list[str], list[list[Any]]]:
    """One row per (run, epoch): the run id and label, then :data:`CURVE_COLUMNS`.

    Raises:
        ZooError: If no run has a recorded epoch.
    """
    headers = ["run", "model"] + [header for _, header in CURVE_COLUMNS]
    rows = [[record.id, record.label] + [_round(epoch.get(key)) for key, _ in CURVE_COLUMNS]
            for record in records for epoch in record.curves]
    if not rows:
        raise ZooError("no recorded epochs in " + ", ".join(r.id for r in records))
    return headers, rows


def curves_figure(records: Sequence[Any]):
    """Draws loss (left) and accuracy (right) per epoch of every run: a matplotlib ``Figure``.

    One colour per run; training curves are dashed with hollow markers,
    validation curves solid with filled ones, so the two differ even for a
    single epoch, and overfitting shows as the solid loss turning up while the
    dashed one keeps falling. One legend below both panels names every run
    and the two styles. The epoch axes carry whole epochs only. Uses
    matplotlib's object API on an Agg canvas: no display and no global
    backend.

    Raises:
        ZooError: If no run has a recorded epoch.
    """
    import math

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    drawn = [r for r in records if r.curves]
    if not drawn:
        raise ZooError("no recorded epochs in " + ", ".join(r.id for r in records))
    styles = (("train", "training", "--", "white"), ("val", "validation", "-", None))
    handles = [Line2D([], [], color=f"C{i % 10}", marker="o", label=f"{r.id} {r.label}") for i, r in enumerate(drawn)]
    handles += [Line2D([], [], color="0.3", linestyle=line, marker="o", markerfacecolor=face or "0.3", label=name)
                for _, name, line, face in styles]
    columns = min(len(handles), 3)
    figure = Figure(figsize=(12, 4.6 + 0.25 * math.ceil(len(handles) / columns)), layout="constrained")
    FigureCanvasAgg(figure)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    epochs_seen = set()
    for index, record in enumerate(drawn):
        colour = f"C{index % 10}"
        epochs = [e["epoch"] for e in record.curves]
        epochs_seen.update(epochs)
        for axes, metric in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
            for split, _, line, face in styles:
                values = [e.get(f"{split}_{metric}") for e in record.curves]
                if any(v is not None for v in values):
                    axes.plot(epochs, [float("nan") if v is None else v for v in values], line, marker="o",
                              color=colour, markerfacecolor=face or colour, label=f"{record.id} ({split})")
    first, last = min(epochs_seen), max(epochs_seen)
    for axes, metric in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        axes.set_title(f"{metric} per epoch")
        axes.grid(True, alpha=0.3)
        # Whole epochs only, even for a single one (MaxNLocator's default wants two integers in view).
        axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        axes.set_xlim(first - 0.5, last + 0.5) if last - first < 2 else axes.margins(x=0.04)
    figure.legend(handles=handles, loc="outside lower center", ncols=columns, fontsize="small", frameon=False)
    return figure


def plot_curves(records: Sequence[Any], path: str | Path) -> Path:
    """Writes :func:`curves_figure` to ``path`` (PNG, PDF or SVG, by its suffix).

    Returns:
        The path written.

    Raises:
        ZooError: If no run has a recorded epoch, or the path cannot be written.
    """
    from zoo_core.tables import image_path

    figure = curves_figure(records)
    path = image_path(path)
    figure.savefig(path, dpi=120)
    return path


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value
