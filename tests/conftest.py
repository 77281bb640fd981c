"""Shared fixtures: a private synth cache per test session and a tiny user card."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

TINY_SYNTH = {"size": 32, "n_train": 8, "n_val": 4, "n_test": 4, "seed": 0}


@pytest.fixture(scope="session")
def synth_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generated-data cache for the whole session (generation happens once per setting)."""
    return tmp_path_factory.mktemp("rsbench-cache")


@contextmanager
def cache_env(cache: Path) -> Iterator[None]:
    """``RSBENCH_CACHE`` set for a module-scoped fixture's work (the autouse fixture covers only tests)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("RSBENCH_CACHE", str(cache))
    try:
        yield
    finally:
        mp.undo()


@pytest.fixture(autouse=True)
def _isolated_cache(synth_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RSBENCH_CACHE", str(synth_cache))


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread in this process, whatever ``OMP_NUM_THREADS`` says: float sums (and so trained weights)
    depend on the thread count, and tests compare in-process runs with subprocesses pinned to one thread."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Back to one thread around every test (a command run in-process with ``--threads N`` sets N)."""
    import torch

    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)


def write_card(path: Path, **overrides: object) -> Path:
    """A tiny teacher card (user card file) for fast CPU tests."""
    card = {
        "description": "tiny test teacher",
        "stage": "teacher",
        "model": "segformer_mit_test",
        "embed_dim": 16,
        "drop_path": 0.1,
        "losses": {"ohem_ce": 1.0},
        "lr": 1e-3,
        "profiles": {
            "quick": {
                "crop": 32,
                "batch_size": 2,
                "iters": 6,
                "warmup_iters": 2,
                "val_interval": 3,
                "ckpt_interval": 3,
                "amp": False,
                "synth": TINY_SYNTH,
            }
        },
    }
    card.update(overrides)
    path.write_text(yaml.safe_dump(card))
    return path


@pytest.fixture
def tiny_card(tmp_path: Path) -> Path:
    return write_card(tmp_path / "tiny.yaml")
