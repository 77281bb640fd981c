"""The leaderboard store: add is a no-op or another run, build is deterministic, check catches edits."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import yaml
from typer.testing import CliRunner

from rsbench.cli import app
from rsbench.leaderboard.store import add, build, check, write
from rsbench.results import write_record
from tests.test_compare import _counts, with_counts
from tests.test_results import minimal_record

REPO = Path(__file__).resolve().parents[1]


def _make(folder: Path, method: str, seed: int, shift: int, protocol: str = "emm") -> Path:
    rec = minimal_record()
    rec.update(method=method, protocol=protocol, checkpoint_sha256=f"{seed}{method}".ljust(64, "0"))
    rec["summary"] = {"full": 50.0 + shift / 10, "avg": 40.0 + shift / 10}
    rec["provenance"]["seed"] = seed
    counts = _counts(np.random.default_rng(seed).integers(200, 800, 30), shift)
    return write_record(with_counts(rec, counts), folder / f"{method}-{protocol}-{seed}.json", counts)


def _store(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    runs.mkdir()
    for s in range(2):
        _make(runs, "teacher", s, 0)
        _make(runs, "robustseg", s, 20)
    root = tmp_path / "leaderboards"
    root.mkdir()
    shutil.copy(REPO / "leaderboards" / "reported.yaml", root / "reported.yaml")
    add([runs], root)
    return root


def test_add_is_deterministic_a_no_op_again_and_never_overwrites(tmp_path: Path) -> None:
    root = _store(tmp_path)
    stored = sorted(p.relative_to(root).as_posix() for p in (root / "records").rglob("*.json"))
    assert stored[0] == "records/deliver-synth/robustseg/emm-s0-0robusts.json" and len(stored) == 4
    again = add([tmp_path / "runs"], root)
    assert {status for _, _, status in again} == {"present"}
    other = _make(tmp_path, "teacher", 0, 5)  # same key, different numbers: another run
    (status_src, dest, status), = add([other], root)
    assert status == "another run" and dest.name.endswith("-run2.json") and dest.with_suffix(".npz").is_file()


def test_build_is_deterministic_and_check_catches_edits(tmp_path: Path) -> None:
    root = _store(tmp_path)
    first = build(root, n_boot=100)
    assert build(root, n_boot=100) == first  # same records, same bytes
    assert set(first) == {"deliver-synth.md", "deliver-synth.csv", "deliver.md", "deliver.csv", "muses.md",
                          "muses.csv", "index.html"}
    md = first["deliver-synth.md"]
    assert "| 1 | [robustseg](records/deliver-synth/robustseg/)" in md and "(n=2)" in md
    assert "Reported" not in md  # generated data never shares a table with published numbers
    # reported numbers, spot-checked against the published table
    assert "| StitchFusion | 41.98 |" in first["deliver.md"] and "| AnySeg |" in first["muses.md"]
    assert "reported,MAGIC++,noise-high,8.7000" in first["deliver.csv"]
    write(root, n_boot=100)
    assert check(root, n_boot=100) == []
    table = root / "deliver-synth.md"
    table.write_text(table.read_text().replace("robustseg", "robustseg2", 1))
    assert any("deliver-synth.md differs" in p for p in check(root, n_boot=100))
    write(root, n_boot=100)
    rec = next((root / "records" / "deliver-synth" / "teacher").glob("*.json"))
    data = json.loads(rec.read_text())
    data["summary"]["avg"] += 1.0
    rec.write_text(json.dumps(data))
    assert check(root, n_boot=100)  # a record edited after the build


def test_cli_check_exits_1_on_a_stale_table(tmp_path: Path) -> None:
    root = _store(tmp_path)
    res = CliRunner().invoke(app, ["leaderboard", "build", "--root", str(root)])
    assert res.exit_code == 0, res.output
    assert CliRunner().invoke(app, ["leaderboard", "check", "--root", str(root)]).exit_code == 0
    (root / "index.html").write_text("stale")
    stale = CliRunner().invoke(app, ["leaderboard", "check", "--root", str(root)])
    assert stale.exit_code == 1 and "index.html differs" in stale.output


def test_reported_yaml_is_well_formed() -> None:
    entries = yaml.safe_load((REPO / "leaderboards" / "reported.yaml").read_text())["entries"]
    assert len(entries) == 10
    assert all(e["source"]["paper"] and e["split"] == "val" for e in entries)
    cmnext = next(e for e in entries if e["model"] == "CMNeXt" and e["dataset"] == "deliver")
    assert cmnext["values"]["emm"] == 37.90 and cmnext["values"]["rmm-25"] == 53.61


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_index_html_in_headless_chromium_matches_the_csv_and_sorts(tmp_path: Path) -> None:
    """Runs where Chromium is installed (.ci/run installs Debian's chromium)."""
    import re
    import subprocess

    import pytest

    browser = _chromium()
    if browser is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    root = _store(tmp_path)
    write(root, n_boot=100)
    page = (root / "index.html").resolve().as_uri()

    def dom(fragment: str = "") -> str:
        out = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                              "--disable-background-networking", "--disable-component-update", "--disable-sync",
                              f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page + fragment],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout

    def table_rows(html_text: str, table_id: str) -> list[tuple[str, list[str]]]:
        body = re.search(rf"<table[^>]*id=\"{table_id}\".*?<tbody>(.*?)</tbody>", html_text, re.S).group(1)
        rows = []
        for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S):
            cells = re.findall(r"<td(?: data-value=\"([^\"]*)\")?[^>]*>(.*?)</td>", tr, re.S)
            rows.append((cells[0][1], [v for v, _ in cells[1:]]))
        return rows

    rows = table_rows(dom(), "deliver-synth-reproduced")
    csv = [line.split(",") for line in (root / "deliver-synth.csv").read_text().splitlines()[1:]]
    expected = {(m, f"{float(v):.4f}") for kind, m, _, v, *_ in csv if kind == "reproduced"}
    assert {(m, v) for m, values in rows for v in values} == expected
    ascending = table_rows(dom("#sort=deliver-synth-reproduced:1"), "deliver-synth-reproduced")
    values = [float(vals[0]) for _, vals in ascending]
    assert values == sorted(values, reverse=True) and [m for m, _ in ascending] == ["robustseg", "teacher"]
    reported = table_rows(dom("#sort=deliver-reported:3"), "deliver-reported")
    col = [float(vals[2]) for _, vals in reported]
    assert col == sorted(col, reverse=True) and len(reported) == 5
