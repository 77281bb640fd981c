"""rsbench compare on hand-made records with known answers; refusal of incomparable records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rsbench.cli import app
from rsbench.errors import ConfigError
from rsbench.leaderboard import compare, render
from rsbench.results import load, write_record
from tests.test_results import minimal_record


def _record(folder: Path, method: str, avg: float, seed: int, per_image: dict | None = None, **identity) -> Path:
    rec = minimal_record()
    rec.update(method=method, **identity)
    rec["summary"] = {"full": avg + 10, "avg": avg}
    rec["provenance"]["seed"] = seed
    return write_record(rec, folder / f"{method}-{seed}.json", per_image)


def test_seeds_give_a_t_interval_and_paired_seed_deltas(tmp_path: Path) -> None:
    for s, (t, r) in enumerate([(40.0, 42.0), (41.0, 43.5), (39.0, 41.5)]):
        _record(tmp_path, "teacher", t, s)
        _record(tmp_path, "robustseg", r, s)
    res = compare([tmp_path], baseline="teacher")
    cell = res["cells"]["robustseg", "emm"]
    assert cell.runs == 3 and cell.value == pytest.approx(42.333333)
    assert cell.delta == pytest.approx(2.333333) and cell.significant  # differences 2.0, 2.5, 2.5: tight
    assert res["methods"][0] == "teacher"
    md = render(res, "md")
    assert "**42.33" in md and "+2.33*" in md
    frame = load(tmp_path)
    assert len(frame) == 6 and set(frame["method"]) == {"teacher", "robustseg"}


def _counts(base: np.ndarray, shift: int) -> dict:
    union = np.full((len(base), 2), 1000)
    inter = np.stack([base + shift, base], axis=1)
    return {"sample_index": list(range(len(base))), "a+b": (inter, union), "a": (inter, union)}


def test_single_runs_bootstrap_over_images_and_paired_significance(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(200, 800, 100)
    _record(tmp_path, "teacher", 50.0, 0, _counts(base, 0))
    _record(tmp_path, "better", 51.5, 0, _counts(base, 30))  # +30/1000 on class 0 of every image: +1.5 mIoU
    res = compare([tmp_path], baseline="teacher", n_boot=300)
    cell = res["cells"]["better", "emm"]
    assert cell.low < cell.value < cell.high and cell.runs == 1
    assert cell.delta == pytest.approx(1.5) and cell.significant
    out = CliRunner().invoke(app, ["compare", str(tmp_path), "--baseline", "teacher", "--format", "csv",
                                   "--bootstrap", "200"])
    assert out.exit_code == 0 and "better,emm,51.5000" in out.output


def test_incomparable_records_are_refused_unless_forced(tmp_path: Path) -> None:
    _record(tmp_path, "teacher", 40.0, 0)
    _record(tmp_path, "other", 40.0, 0, resolution=256)
    with pytest.raises(ConfigError, match="differ in resolution"):
        compare([tmp_path])
    res = compare([tmp_path], force=True)
    assert "resolution" in res["note"]
    out = CliRunner().invoke(app, ["compare", str(tmp_path)])
    assert out.exit_code != 0 and "differ in resolution" in out.output
    forced = CliRunner().invoke(app, ["compare", str(tmp_path), "--force", "--format", "json"])
    assert forced.exit_code == 0 and "resolution" in json.loads(forced.output)["note"]
