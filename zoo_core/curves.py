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


def plot_curves(records: Sequence[Any], path: str | Path) -> Path:
    """Writes loss (left) and accuracy (right) per epoch of every run to a PNG.

    Training curves are dashed, validation curves solid, one colour per run,
    so overfitting shows as the solid loss turning up while the dashed one
    keeps falling. Uses matplotlib's object API on an Agg canvas: no display
    and no global backend.

    Returns:
        ``path``.

    Raises:
        ZooError: If no run has a recorded epoch.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    drawn = [r for r in records if r.curves]
    if not drawn:
        raise ZooError("no recorded epochs in " + ", ".join(r.id for r in records))
    figure = Figure(figsize=(12, 4.8), layout="constrained")
    FigureCanvasAgg(figure)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for index, record in enumerate(drawn):
        colour = f"C{index % 10}"
        epochs = [e["epoch"] for e in record.curves]
        for axes, metric in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
            for split, style in (("train", "--"), ("val", "-")):
                values = [e.get(f"{split}_{metric}") for e in record.curves]
                if any(v is not None for v in values):
                    axes.plot(epochs, [float("nan") if v is None else v for v in values], style, marker="o",
                              color=colour, label=f"{record.id} {record.label} ({split})")
    for axes, metric in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        axes.set_title(f"{metric} per epoch (dashed: training, solid: validation)")
        axes.grid(True, alpha=0.3)
        axes.xaxis.get_major_locator().set_params(integer=True)
    accuracy_axes.legend(fontsize="small", loc="best")
    from zoo_core.tables import image_path

    path = image_path(path)
    figure.savefig(path, dpi=120)
    return path


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value
