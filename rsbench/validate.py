"""Checks the CLI runs between parsing and computing: options in range, devices, modalities, folders, files.

Every check raises a :class:`rsbench.errors.RsbenchError` with one line that names the option or
file, so a bad input fails in a second instead of after (or halfway through) the compute, and
nothing is written. Nothing here creates a folder or a file.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rsbench.errors import ConfigError, DataError

if TYPE_CHECKING:
    from rsbench.data import SegmentationDataset

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def positive_int(option: str, value: int | None) -> None:
    """``value`` is unset or an integer > 0."""
    if value is not None and value < 1:
        raise ConfigError(f"{option} must be a positive integer, got {value}")


def positive_float(option: str, value: float | None) -> None:
    """``value`` is unset or a finite number > 0 (rejects nan, inf, 0 and negatives)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{option} must be a finite number > 0, got {value}")


def check_device(device: str) -> None:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, and available on this machine."""
    if not _DEVICE.match(device):
        raise ConfigError(f"unknown --device {device!r} (choose auto, cpu, cuda, cuda:N or mps)")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: CUDA is not available on this machine (use --device cpu)")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise ConfigError("--device mps: Apple's MPS backend is not available on this machine")


def parse_modalities(text: str | None, dataset: str) -> tuple[str, ...] | None:
    """``--modalities a,b`` as a tuple checked against the dataset's names; ``None`` when not given."""
    if text is None:
        return None
    from rsbench.data import dataset_class, split_name

    info = dataset_class(split_name(dataset)[0]).info
    known = ", ".join(info.all_modalities)
    names = tuple(m.strip() for m in text.split(","))
    if not any(names):
        raise ConfigError(f"--modalities is empty: name at least one of {known}")
    if not all(names):
        raise ConfigError(f"--modalities {text!r} has an empty name (choose from {known})")
    unknown = [m for m in names if m not in info.all_modalities]
    if unknown:
        raise ConfigError(f"--modalities: bad modalities {list(names)} (choose from {known}; "
                          f"{dataset} has no {unknown[0]!r})")
    if len(set(names)) != len(names):
        raise ConfigError(f"--modalities {text!r} names a modality twice")
    return names


def writable_folder(path: str | Path, option: str = "--out") -> Path:
    """``path`` is a folder that exists and is writable, or can be created (its nearest existing parent is a
    writable folder). Creates nothing."""
    path = Path(path).expanduser()
    _check_creatable(path, path, option)
    return path


def writable_file(path: str | Path, option: str = "--out") -> Path:
    """``path`` is not a folder and can be written: its folder exists and is writable, or can be created."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ConfigError(f"{option} {path} is a folder; give a file name")
    _check_creatable(path.parent, path, option)
    return path


def _check_creatable(folder: Path, shown: Path, option: str) -> None:
    """``folder`` exists as a writable folder or can be made; errors name ``shown`` (what the user gave)."""
    probe = folder
    while not probe.exists():
        if probe.is_symlink():
            raise ConfigError(f"{option} {shown} cannot be created: {probe} is a broken link")
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        what = "is not a folder" if probe == shown else f"cannot be created: {probe} is not a folder"
        raise ConfigError(f"{option} {shown} {what}")
    if not os.access(probe, os.W_OK | os.X_OK) or not _can_create_in(probe):
        where = "" if probe == shown else f" ({probe} is not writable)"
        raise ConfigError(f"{option} {shown} is not writable{where}")


def _can_create_in(folder: Path) -> bool:
    """Create and remove a file in ``folder``: as root ``os.access`` says yes under ``/proc`` and ``/sys`` (and on
    a read-only mount), so only a real write tells."""
    import tempfile

    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".rsbench-probe-")
    except OSError:
        return False
    os.close(fd)
    try:
        os.unlink(name)
    except OSError:
        pass
    return True


# ------------------------------------------------------------------ data files
def file_problem(path: Path) -> str | None:
    """What is wrong with one data file, judged from its header and size alone (no decoding), or ``None``.

    The wording is the loaders' (``missing file``, ``not a PNG file``, ``unreadable or truncated image``),
    so a file reads the same whether this check or the loader finds it.
    """
    kind = path.suffix.lower()
    try:
        size = path.stat().st_size
        if size == 0:
            return f"unreadable .npy file: {path} (empty)" if kind == ".npy" else \
                f"unreadable or truncated image: {path} (empty file)"
        with path.open("rb") as f:
            if kind == ".png":
                return _png_problem(f, size, path)
            if kind == ".npy":
                return _npy_problem(f, size, path)
    except FileNotFoundError:
        return f"missing file: {path}"
    except OSError as exc:
        return f"unreadable file: {path} ({exc.strerror})"
    return None


def _png_problem(f: Any, size: int, path: Path) -> str | None:
    head = f.read(24)
    if len(head) < 24 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return f"not a PNG file: {path}"
    f.seek(max(0, size - len(_PNG_END)))
    if f.read() != _PNG_END:
        return f"unreadable or truncated image: {path} (no PNG end chunk)"
    return None


def _npy_problem(f: Any, size: int, path: Path) -> str | None:
    import numpy as np

    try:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)  # the header only: no pickle, no data
    except (ValueError, OSError, EOFError) as exc:
        return f"unreadable .npy file: {path} ({exc})"
    if dtype.hasobject:  # the loader refuses these too: unpickling could run code from the file
        return f"unreadable .npy file: {path} (Object arrays cannot be loaded when allow_pickle=False)"
    expected = f.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size < expected:
        return f"unreadable .npy file: {path} (truncated: {size} of {expected} bytes)"
    return None


def dataset_files(ds: SegmentationDataset) -> Iterable[tuple[str, Path]]:
    """``(sample id, file)`` for each file a run reads from ``ds``: labels and the selected modalities (with
    their partner files)."""
    for ref in ds.samples:
        for key, path in ref.files.items():
            if key == "label" or any(key == m or key.startswith(f"{m}_") for m in ds.modalities):
                yield ref.id, path


def check_dataset_files(datasets: Sequence[SegmentationDataset]) -> int:
    """Header-check every file the run will read; a :class:`DataError` names the first bad file and the count.

    Returns the number of files checked. Same findings as ``rsbench data check`` for missing, empty,
    truncated and mislabelled files, in a fraction of its time (no pixels are decoded).
    """
    n, bad = 0, []
    for ds in datasets:
        for sample, path in dataset_files(ds):
            n += 1
            problem = file_problem(path)
            if problem is not None:
                bad.append((ds, f"{sample}: {problem}"))
    if bad:
        ds, problem = bad[0]
        more = f" (and {len(bad) - 1} more files)" if len(bad) > 1 else ""
        raise DataError(f"{problem}{more}; found in {ds.name}/{ds.split} before any compute "
                        f"(rsbench data check -d {ds.name} lists every problem)")
    return n
