"""Datasets by name: the three real benchmarks and their generated ``-synth`` look-alikes.

``create_dataset("deliver", root=...)`` reads a real download in its published layout;
``create_dataset("deliver-synth")`` reads generated data in the same layout, made on
first use in a cache folder (``$RSBENCH_CACHE``, default ``~/.cache/rsbench``). A
generated set keeps its ``-synth`` name everywhere (records, leaderboards), so its
results never mix with real-data results.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from rsbench.data.base import IGNORE_INDEX, DatasetInfo, Problem, Sample, SampleRef, SegmentationDataset
from rsbench.errors import ConfigError, DataError

__all__ = [
    "IGNORE_INDEX",
    "DatasetInfo",
    "Problem",
    "Sample",
    "SampleRef",
    "SegmentationDataset",
    "create_dataset",
    "dataset_class",
    "list_datasets",
    "split_name",
    "synth_root",
]

# Loaders are imported on first use so that ``rsbench --help`` stays fast.
_LOADERS: dict[str, str] = {
    "deliver": "rsbench.data.deliver:DeliverDataset",
    "muses": "rsbench.data.muses:MusesDataset",
    "mcubes": "rsbench.data.mcubes:McubesDataset",
}
SYNTH_SUFFIX = "-synth"
SYNTH_VERSION = 1
"""Bumped whenever the generator's output changes, so stale caches are not reused."""


def list_datasets() -> list[str]:
    """Every accepted dataset name, real and generated."""
    return sorted([*_LOADERS, *(n + SYNTH_SUFFIX for n in _LOADERS)])


def split_name(name: str) -> tuple[str, bool]:
    """``"deliver-synth"`` -> ``("deliver", True)``; unknown names raise :class:`ConfigError`."""
    base, synth = (name[: -len(SYNTH_SUFFIX)], True) if name.endswith(SYNTH_SUFFIX) else (name, False)
    if base not in _LOADERS:
        import difflib

        close = difflib.get_close_matches(name, list_datasets(), n=2, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown dataset {name!r}{hint} (known: {', '.join(list_datasets())})")
    return base, synth


def dataset_class(name: str) -> type[SegmentationDataset]:
    base, _ = split_name(name)
    module, attr = _LOADERS[base].split(":")
    return getattr(importlib.import_module(module), attr)


def cache_dir() -> Path:
    """Where generated data lives: ``$RSBENCH_CACHE``, else ``~/.cache/rsbench`` (a file there is refused)."""
    path = Path(os.environ.get("RSBENCH_CACHE", Path.home() / ".cache" / "rsbench")).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"RSBENCH_CACHE {path} is a file, not a folder (generated data is cached there)")
    return path


def synth_root(like: str, **params: Any) -> Path:
    """Folder of a generated dataset, generating it (atomically) on first use.

    ``params`` are the generator's settings (size, n_train, n_val, n_test, seed); the
    folder name hashes them with the generator version, so a change never reuses stale data.
    """
    from rsbench.data.synth import synth_defaults, synthesize

    base, _ = split_name(like)
    settings = {**synth_defaults(base), **{k: v for k, v in params.items() if v is not None}}
    key = json.dumps({"v": SYNTH_VERSION, "like": base, **settings}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    root = cache_dir() / "synth" / f"{base}-synth-{digest}"
    if (root / ".complete").is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}."))
    try:
        synthesize(base, tmp, **settings)
        (tmp / ".complete").write_text(key)
        try:
            os.replace(tmp, root)
        except OSError:  # another process finished first; keep theirs
            if not (root / ".complete").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def create_dataset(
    name: str,
    root: str | Path | None = None,
    split: str = "train",
    synth: dict[str, Any] | None = None,
    **kwargs: Any,
) -> SegmentationDataset:
    """Build a loader by dataset name.

    Args:
        name: ``deliver``, ``muses``, ``mcubes`` or one of them with ``-synth``.
        root: folder of the real download (required for real datasets; for ``-synth``
            names an explicit folder written by ``rsbench data synth`` may be given).
        split: ``train``, ``val`` or ``test``.
        synth: generator settings for ``-synth`` names when ``root`` is not given.
        **kwargs: passed to the loader (``modalities``, ``conditions``, ``transform``, options).
    """
    base, is_synth = split_name(name)
    cls = dataset_class(base)
    if root is None:
        if not is_synth:
            raise DataError(
                f"{base} needs --root: the folder of the real download ({cls.info.layout}); "
                f"get it from {cls.info.source}, or use '{base}-synth'"
            )
        root = synth_root(base, **(synth or {}))
    ds = cls(root, split=split, **kwargs)
    ds.name = name
    return ds
