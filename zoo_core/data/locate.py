"""Where the data is: the places looked at, :func:`find_source`, and Stanford's archive downloaded.

A source is looked for, first match wins, at ``DataConfig.source`` (set by
``--data PATH`` or ``$ZOO_DATA``, which the CLI reads, or by ``--set
data.source`` and ``registry.toml``), then along ``registry.toml``'s ``[data]
search_path``. Nothing here reads the environment: the caller says where
``DataConfig.source`` came from (``origin``), and errors name it.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from zoo_core.config import DataConfig
from zoo_core.data.cache import sha256_file, write_atomic
from zoo_core.data.sources import Progress, check_source, describe_sources, progress_bar
from zoo_core.errors import ZooError

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
IMDB_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
IMDB_SIZE = 84_125_825


def keras_datasets_dir() -> Path:
    """Where Keras keeps datasets: ``$KERAS_HOME/datasets`` or ``~/.keras/datasets``."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "datasets"


def candidate_sources(config: DataConfig, settings, origin: str | None = None) -> list[tuple[Path, str]]:
    """Where the loader looks, in order: ``(path, where it came from)``.

    Args:
        config: ``config.source``, when set, is the only place.
        settings: ``registry.toml``'s settings; their ``search_path`` is used otherwise.
        origin: Where ``config.source`` came from, e.g. ``"--data"`` or ``"ZOO_DATA"``
            (default ``"data.source"``, the setting).
    """
    if config.source:
        return [(Path(config.source).expanduser(), origin or "data.source")]
    return [(Path(p), "search path") for p in settings.search_path]


def find_source(config: DataConfig, settings, allow_download: bool = False, progress: Progress | None = None,
                origin: str | None = None) -> Path:
    """The first existing source; downloads Stanford's archive as a last resort when allowed.

    Cheap (no NumPy or TensorFlow, one small read: :func:`~zoo_core.data.sources.check_source`),
    so commands call it before slow setup.

    Args:
        config, settings, origin: As for :func:`candidate_sources`.
        allow_download: Download Stanford's archive when nothing is found.
        progress: Draws the download's progress bar.

    Raises:
        ZooError: naming every place looked at, where it came from, and how to point elsewhere;
            or naming a source found that is no IMDB source (its first bytes, :func:`check_source`).
    """
    candidates = candidate_sources(config, settings, origin)
    for path, _ in candidates:
        if path.exists():
            return check_source(path)
    if config.source:
        path, why = candidates[0]
        raise ZooError(f"no IMDB data at {path} (from {why}); give an existing {describe_sources()}")
    if allow_download:
        return download_imdb(progress=progress)
    looked = ", ".join(str(p) for p, _ in candidates) or "nowhere (registry.toml has no [data] search_path)"
    # Only what every command that loads data has: --data, $ZOO_DATA and `zoo data download`.
    raise ZooError(f"no IMDB data found; looked in: {looked}; point to a copy with --data PATH or ZOO_DATA=PATH, "
                   "or fetch Stanford's archive with `zoo data download`")


def download_imdb(dest: str | os.PathLike | None = None, url: str = IMDB_URL, sha256: str = IMDB_SHA256,
                  size: int | None = IMDB_SIZE, progress: Progress | None = None) -> Path:
    """Downloads Stanford's archive (or whatever ``url`` names) and verifies it.

    Args:
        dest: Target file; default ``<keras datasets dir>/<url's file name>``.
        url: Where from (``http(s)://`` or ``file://``).
        sha256: Expected sha256 of the file.
        size: Expected size in bytes, or None not to check.
        progress: Draws a progress bar (see :data:`zoo_core.progress.Progress`).

    Returns:
        The verified file. An existing file that verifies is reused.

    Raises:
        ZooError: when the download fails or the file does not verify (nothing is kept).
    """
    dest = Path(dest) if dest else keras_datasets_dir() / Path(urllib.parse.urlparse(url).path).name
    if dest.is_file() and (size is None or dest.stat().st_size == size) and sha256_file(dest) == sha256:
        return dest
    digest = hashlib.sha256()

    def write(f) -> None:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or size or 0)
            with progress_bar(progress if total > 0 else None, total, f"downloading {url}") as bar:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    digest.update(chunk)
                    f.write(chunk)
                    bar.update(len(chunk))
        got = f.tell()
        if size is not None and got != size:
            raise ZooError(f"download of {url} has {got:,} bytes, expected {size:,}; nothing kept")
        if digest.hexdigest() != sha256:
            raise ZooError(f"download of {url} has sha256 {digest.hexdigest()}, expected {sha256}; nothing kept")

    try:
        write_atomic(dest, write)
    except (urllib.error.URLError, OSError) as err:
        raise ZooError(f"could not download {url} ({getattr(err, 'reason', err)}); "
                       "fetch it by hand and pass --data PATH") from None
    return dest
