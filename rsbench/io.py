"""Reading and writing the benchmark files exactly (PNG of 8/16 bits, ``.npy``).

OpenCV is used because Pillow cannot hold 3-channel 16-bit PNGs (MUSES lidar) and
decodes large PNGs more slowly. OpenCV works in BGR; everything here speaks RGB.
Writes are atomic (temporary file + rename) so a crash never leaves half a file, and the file
gets the permissions of an ordinary ``open()`` under the user's umask (``tempfile.mkstemp``
creates 0600, which would hide checkpoints and records from a group sharing a run folder).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

from rsbench.errors import DataError

cv2.setNumThreads(1)


def read_png(path: str | Path) -> np.ndarray:
    """Read a PNG unchanged: ``[H, W]`` or ``[H, W, C]`` (RGB/RGBA order), uint8 or uint16.

    Raises :class:`DataError` for a missing, truncated or undecodable file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"missing file: {path}")
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise DataError(f"unreadable or truncated image: {path}")
    if img.ndim == 3:
        if img.shape[2] == 3:
            img = img[:, :, ::-1]
        elif img.shape[2] == 4:
            img = img[:, :, [2, 1, 0, 3]]
    return np.ascontiguousarray(img)


def png_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` of a PNG from its header, without decoding the pixels."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise DataError(f"not a PNG file: {path}")
    width = int.from_bytes(head[16:20], "big")
    height = int.from_bytes(head[20:24], "big")
    return height, width


def read_npy(path: str | Path) -> np.ndarray:
    """Read a ``.npy`` array without pickle (never executes code from a file)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"missing file: {path}")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"unreadable .npy file: {path} ({exc})") from None


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux: ``/proc/self/status``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but rsbench writes from one thread)
    os.umask(mask)
    return mask


def publish(tmp: str | Path, path: str | Path) -> None:
    """Give a finished temporary file the mode ``open()`` would (``0o666 & ~umask``) and rename it to ``path``."""
    os.chmod(tmp, 0o666 & ~current_umask())
    os.replace(tmp, path)


def atomic_write(path: Path, write: Callable[[BinaryIO], None], *, fsync: bool = False,
                 before_publish: Callable[[], None] | None = None) -> None:
    """The one atomic write: ``write(f)`` into a temporary file beside ``path``, then rename it to ``path``.

    A crash, a full disk or an interrupt leaves either the old file or the new one, never a half-written one
    (the temporary file is removed). ``fsync`` flushes it to disk first (checkpoints); ``before_publish`` runs
    just before the rename (a checkpoint moves its predecessor aside there).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        if before_publish is not None:
            before_publish()
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def write_png(path: str | Path, img: np.ndarray) -> None:
    """Write ``[H, W]`` or ``[H, W, 3]`` (RGB) uint8/uint16 as a PNG, byte-reproducibly."""
    if img.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"PNG needs uint8 or uint16, got {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 3:
        img = img[:, :, ::-1]
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img), [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise OSError(f"could not encode PNG for {path}")
    _atomic_write_bytes(Path(path), buf.tobytes())


def write_npy(path: str | Path, arr: np.ndarray) -> None:
    """Write a ``.npy`` file atomically."""
    import io

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    _atomic_write_bytes(Path(path), buf.getvalue())


def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically."""
    _atomic_write_bytes(Path(path), text.encode("utf-8"))
