"""Comparisons that cannot mislead, on constructed records: the validator's values, a record's .npz against
its JSON, one evaluation counted once, one training per method, distinct seeds, reported.yaml."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rsbench.cli import app
from rsbench.errors import ConfigError
from rsbench.leaderboard import compare
from rsbench.results import _write_npz, read_per_image, read_record, write_record
from tests.test_compare import _counts, with_counts
from tests.test_results import _set, minimal_record

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def rec_file(folder: Path, name: str, method: str = "teacher", seed: int | None = 0, sha: str | None = "auto",
             iters: int | None = 3600, card: dict | None = None, shift: int = 0, n: int = 40, **fields) -> Path:
    """A consistent record with its .npz: counts drawn from ``seed`` (and ``shift`` on class 0), numbers from them."""
    rec = minimal_record()
    rec.update(method=method, **fields)
    rec["checkpoint_sha256"] = f"{method}{seed}{iters}".ljust(64, "0") if sha == "auto" else sha
    rec["provenance"]["seed"] = seed
    if iters is not None:
        rec["provenance"]["trained_iters"] = iters
    rec["card"] = {} if card is None else card
    counts = _counts(np.random.default_rng(seed or 0).integers(200, 800, n), shift)
    with_counts(rec, counts)
    rec["summary"] = {"full": rec["conditions"]["a+b"]["miou"], "avg": rec["conditions"]["a"]["miou"]}
    return write_record(rec, folder / name, counts)


# ---------------------------------------------------------------------------------------------- validator
@pytest.mark.parametrize(("dotted", "value", "message"), [
    ("summary.avg", float("nan"), "'summary.avg' is nan, not a finite number"),
    ("summary.full", float("inf"), "'summary.full' is inf, not a finite number"),
    ("conditions.a.miou", float("nan"), "'conditions.a.miou' is nan, not a finite number"),
    ("conditions.a.pixel_acc", float("-inf"), "'conditions.a.pixel_acc' is -inf, not a finite number"),
    ("conditions.a.miou", -1.0, "'conditions.a.miou' is -1.0, not an mIoU in percent"),
    ("conditions.a.per_class_iou", [140.0, None], r"'conditions.a.per_class_iou\[0\]' is 140.0, not an IoU"),
    ("num_samples", -3, "'num_samples' is -3; a count must be at least 1"),
    ("num_samples", 0, "'num_samples' is 0; a count must be at least 1"),
    ("resolution", 0, "'resolution' is 0; a count must be at least 1"),
    ("provenance.world_size", -1, "'provenance.world_size' is -1; a count must be at least 1"),
    ("provenance.trained_iters", -200, "'provenance.trained_iters' is -200; a count must be at least 0"),
    ("provenance.wall_time_s", -1.0, "'provenance.wall_time_s' is -1.0, not a time in seconds"),
    ("conditions.a.num_classes", 3, "'conditions.a.per_class_iou' has 2 entries for 3 classes"),
    ("conditions.a.num_classes", -2, "'conditions.a.num_classes' is -2; a count must be at least 1"),
    ("conditions.a.per_class_iou", [40.0], "'conditions.a.per_class_iou' has 1 entries, 'conditions.a\\+b"),
])
def test_validator_refuses_non_finite_negative_and_short(tmp_path: Path, dotted: str, value, message: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(_set(minimal_record(), dotted, value)))  # json writes NaN and Infinity tokens
    with pytest.raises(ConfigError, match=f"broken.json: field {message}"):
        read_record(path)
    out = runner.invoke(app, ["compare", str(path)])
    assert out.exit_code == 2 and "broken.json: field" in out.stderr and len(out.stderr.splitlines()) == 1


def test_a_non_finite_record_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    bad = _set(minimal_record(), "summary.avg", math.inf)
    with pytest.raises(ConfigError, match="'summary.avg' is inf"):
        write_record(bad, tmp_path / "r.json", _counts(np.arange(300, 304), 0))
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------------ .npz vs JSON
def _renpz(record: Path, counts: dict) -> None:
    record.with_suffix(".npz").unlink()
    _write_npz(record.with_suffix(".npz"), counts)


def test_a_record_beside_another_record_s_npz_is_refused(tmp_path: Path) -> None:
    a = rec_file(tmp_path / "a", "r.json", seed=0)
    b = rec_file(tmp_path / "b", "r.json", seed=1, shift=40)
    assert read_per_image(a) and compare([a], n_boot=50)["cells"]["teacher", "emm"].runs == 1
    shutil.copyfile(b.with_suffix(".npz"), a.with_suffix(".npz"))  # b's counts beside a's JSON
    with pytest.raises(ConfigError, match=r"a/r\.json: its per-image counts r\.npz are not the record's: condition "
                                          r"a\+b, class 0: their totals give IoU [\d.]+, the record [\d.]+"):
        read_per_image(a)
    out = runner.invoke(app, ["compare", str(a), "--format", "csv"])
    assert out.exit_code == 2 and len(out.stderr.splitlines()) == 1 and "are not the record's" in out.stderr
    assert out.stdout == ""  # nothing printed: found before any statistic


def test_the_npz_must_hold_the_record_s_conditions_samples_and_classes(tmp_path: Path) -> None:
    counts = _counts(np.random.default_rng(0).integers(200, 800, 40), 0)

    def each(change, samples=counts["sample_index"]) -> dict:
        return {"sample_index": samples, **{k: change(*v) for k, v in counts.items() if k != "sample_index"}}

    cases = [
        ({"sample_index": counts["sample_index"], "a": counts["a"]}, r"hold conditions a; the record has a\+b, a"),
        (each(lambda i, u: (i[:30], u[:30]), counts["sample_index"][:30]), "hold 30 samples; the record has 40"),
        (each(lambda i, u: (np.c_[i, i[:, :1]], np.c_[u, u[:, :1]])), r"a\+b counts 3 classes; the record has 2"),
        (each(lambda i, u: (i - 500, u)), r"condition a\+b has negative counts or an intersection above its union"),
        (each(lambda i, u: (i, np.zeros_like(u))), r"condition a\+b has negative counts or an intersection above"),
    ]
    for i, (npz, message) in enumerate(cases):
        path = rec_file(tmp_path / str(i), "r.json")
        _renpz(path, npz)
        with pytest.raises(ConfigError, match=message):
            compare([path], n_boot=20)


def test_an_edited_miou_no_longer_matches_its_counts(tmp_path: Path) -> None:
    path = rec_file(tmp_path, "r.json")
    data = json.loads(path.read_text())
    data["conditions"]["a"]["miou"] += 0.5
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"condition a: their totals give mIoU [\d.]+, the record [\d.]+"):
        read_per_image(path)
