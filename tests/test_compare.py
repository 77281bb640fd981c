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
    return write_record(with_counts(rec, per_image), folder / f"{method}-{seed}.json", per_image)


def with_counts(rec: dict, per_image: dict | None) -> dict:
    """``rec`` with the sample count and per-condition IoUs its per-image counts give (a record must match them)."""
    if per_image is None:
        return rec
    rec["num_samples"] = len(per_image["sample_index"])
    for key, (inter, union) in ((k, v) for k, v in per_image.items() if k != "sample_index"):
        i, u = np.asarray(inter).sum(0), np.asarray(union).sum(0)
        iou = [None if b == 0 else 100 * a / b for a, b in zip(i.tolist(), u.tolist(), strict=True)]
        rec["conditions"][key] = {"miou": float(np.mean([v for v in iou if v is not None])), "per_class_iou": iou}
    return rec


def _counts(base: np.ndarray, shift: int) -> dict:
    union = np.full((len(base), 2), 1000)
    inter = np.stack([base + shift, base], axis=1)
    return {"sample_index": list(range(len(base))), "a+b": (inter, union), "a": (inter, union)}


def test_seeds_give_a_t_interval_and_a_paired_bootstrap_over_seeds_and_images(tmp_path: Path) -> None:
    from rsbench.leaderboard.stats import miou_from_counts

    rng = np.random.default_rng(5)
    for s in range(3):
        base = rng.integers(200, 800, 60)
        for method, shift in (("teacher", 0), ("robustseg", 20)):  # +20/1000 on class 0 everywhere: +1.0 mIoU
            counts = _counts(base, shift)
            avg = miou_from_counts(*(x.sum(0) for x in counts["a"]))
            _record(tmp_path, method, avg, s, counts)
    res = compare([tmp_path], baseline="teacher", n_boot=200)
    cell = res["cells"]["robustseg", "emm"]
    assert cell.runs == 3 and cell.low < cell.value < cell.high
    assert cell.delta == pytest.approx(1.0) and cell.significant
    assert res["methods"][0] == "teacher"
    md = render(res, "md")
    assert "+1.00*" in md and md.count("**") == 2  # the best cell of the one protocol is bold
    frame = load(tmp_path)
    assert len(frame) == 6 and set(frame["method"]) == {"teacher", "robustseg"}


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


def test_readme_shows_what_compare_prints_on_the_committed_records() -> None:
    """The README's deliver-synth comparison is the output of its command on the committed records."""
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    command = "rsbench compare leaderboards/records --dataset deliver-synth --baseline teacher --format md"
    assert command in readme
    after = readme[readme.index(command):]
    table = after[after.index("| method |"):]
    table = table[:table.index("\n\n")].strip()
    result = compare([root / "leaderboards" / "records"], dataset="deliver-synth", baseline="teacher")
    assert render(result, "md").strip() == table
