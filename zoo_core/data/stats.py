"""Statistics of prepared splits, for ``zoo data stats``: length percentiles and padding efficiency."""

from __future__ import annotations

from zoo_core.data.batching import batch_order
from zoo_core.lazy import np

PERCENTILES = (50, 75, 90, 95, 99, 100)


def length_percentiles(lengths: np.ndarray) -> dict[str, int]:
    """Review length at :data:`PERCENTILES` (100 = max), rounded up to whole tokens."""
    if not len(lengths):
        return {f"p{p}" if p < 100 else "max": 0 for p in PERCENTILES}
    values = np.percentile(lengths, PERCENTILES, method="higher")
    return {f"p{p}" if p < 100 else "max": int(v) for p, v in zip(PERCENTILES, values)}


def padding_efficiency(lengths: np.ndarray, batch_size: int, mode: str, maxlen: int = 0, seed: int = 0) -> float:
    """Real tokens / processed tokens when batching reviews of ``lengths``.

    Args:
        lengths: Tokens per review (after truncation for ``"maxlen"`` and ``"bucket"``).
        batch_size: Reviews per batch.
        mode: ``"global"`` pads every review to the longest of all; ``"maxlen"``
            to ``maxlen``; ``"batch"`` each shuffled batch to its longest;
            ``"bucket"`` each length-sorted batch to its longest.
        maxlen: The width for ``"maxlen"``.
        seed: Shuffles ``"batch"``.

    Raises:
        ValueError: for an unknown ``mode``.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if not len(lengths):
        return 1.0
    if mode == "global":
        processed = len(lengths) * int(lengths.max())
    elif mode == "maxlen":
        processed = len(lengths) * maxlen
    elif mode in ("batch", "bucket"):
        batches = batch_order(lengths, batch_size, bucket=mode == "bucket", shuffle=True, seed=seed)
        processed = sum(len(rows) * int(lengths[rows].max()) for rows in batches)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    return float(lengths.sum()) / max(1, processed)
