"""A new user's first hour: instant help, thread policy, validation before compute, log-friendly output, file modes.

Bad options and usage errors themselves are rows of ``tests/test_bad_inputs.py``; this module tests
what a row cannot: imports, environment variables, progress lines over time, permissions, reuse.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

from rsbench.cli import app
from rsbench.errors import ConfigError
from rsbench.threads import ENV_VAR, MAX_DEFAULT_THREADS, choose_threads, default_threads

runner = CliRunner()


def run(*args: object, env: dict[str, str] | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env)


# ------------------------------------------------------------------------------------------- help
HELP_SCRIPT = """
import json, sys
from typer.main import get_command
from typer.testing import CliRunner
from rsbench.cli import app

def paths(cmd, prefix):
    yield prefix
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from paths(sub, [*prefix, name])

failed = []
for path in paths(get_command(app), []):
    result = CliRunner().invoke(app, [*path, "--help"])
    if result.exit_code != 0 or "Usage" not in result.output:
        failed.append(path)
n = sum(1 for _ in paths(get_command(app), []))
print(json.dumps({"commands": n, "failed": failed, "heavy": [m for m in ("torch", "timm", "cv2") if m in sys.modules]}))
"""


def test_every_help_answers_without_importing_torch() -> None:
    """In a fresh interpreter (other tests' imports would hide a regression): no torch, timm or OpenCV."""
    out = subprocess.run([sys.executable, "-c", HELP_SCRIPT], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["commands"] >= 12, report  # rsbench, data (3), train, eval, demo, plot, compare, leaderboard (3)
    assert report["failed"] == [] and report["heavy"] == [], report


# ---------------------------------------------------------------------------------------- threads
def test_thread_choice_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rsbench.threads.available_cpus", lambda: 6)
    assert choose_threads(3, {ENV_VAR: "2", "OMP_NUM_THREADS": "4"}).threads == 3
    assert choose_threads(None, {ENV_VAR: "2", "OMP_NUM_THREADS": "4"}).source == f"${ENV_VAR}"
    assert choose_threads(None, {"OMP_NUM_THREADS": "4"}).threads == 4
    choice = choose_threads(None, {})
    assert (choice.threads, choice.source) == (5, "default") and "6 CPUs available" in choice.describe()
    with pytest.raises(ConfigError, match=f"{ENV_VAR}='two' is not a positive integer"):
        choose_threads(None, {ENV_VAR: "two"})


@pytest.mark.parametrize(("cpus", "threads"), [(1, 1), (2, 1), (4, 3), (64, MAX_DEFAULT_THREADS)])
def test_default_leaves_one_cpu_free_and_is_capped(cpus: int, threads: int) -> None:
    assert default_threads(cpus) == threads


def test_bad_thread_variable_is_one_line_before_anything_is_written(tmp_path: Path, tiny_card: Path) -> None:
    result = run("train", tiny_card, "-d", "deliver-synth", "-p", "quick", "--out", tmp_path / "run",
                 env={ENV_VAR: "0"})
    assert result.exit_code == 2
    assert result.stderr.strip() == f"rsbench: error: ${ENV_VAR}='0' is not a positive integer"
    assert not (tmp_path / "run").exists()


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o002)
    yield
    os.umask(old)


@pytest.fixture
def tiny_run(tmp_path: Path, tiny_card: Path, umask: None) -> tuple[Path, str]:
    """A tiny teacher trained with ``--threads 1`` under umask 002; returns (run folder, output)."""
    out = tmp_path / "run"
    result = run("train", tiny_card, "-d", "deliver-synth", "-p", "quick", "--out", out, "--threads", 1)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_threads_are_applied_printed_and_recorded_and_files_follow_the_umask(tiny_run: tuple[Path, str],
                                                                             tmp_path: Path) -> None:
    out, output = tiny_run
    assert "threads: 1 (from --threads" in output
    long_dir = tmp_path / ("a-rather-long-folder-name-for-a-ci-log-" * 3) / "records"
    try:
        result = run("eval", "--checkpoint", out / "last.pt", "--protocol", "emm", "--out", long_dir / "emm.json",
                     "--threads", 2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    assert result.exit_code == 0, result.output
    assert "threads: 2 (from --threads" in result.output
    record = json.loads((long_dir / "emm.json").read_text())
    assert record["provenance"]["threads"] == 2
    # not a terminal: the record path is printed whole on one line, and no bar leaves a blank line
    assert f"record: {long_dir / 'emm.json'}" in result.output.splitlines()
    assert all(line.strip() for line in result.output.splitlines()), result.output
    # every file the run and the evaluation wrote has the mode open() gives under umask 002
    written = [out / "last.pt", out / "log.jsonl", long_dir / "emm.json", long_dir / "emm.npz"]
    assert {f.name: oct(f.stat().st_mode & 0o777) for f in written} == {f.name: "0o664" for f in written}


# ------------------------------------------------------------------------------------ validation
def test_a_model_with_the_wrong_class_count_fails_on_the_first_batch() -> None:
    import rsbench

    class TenClasses(torch.nn.Module):
        def forward(self, modalities: dict, present: torch.Tensor) -> torch.Tensor:
            x = next(iter(modalities.values()))
            return torch.zeros(x.shape[0], 10, *x.shape[-2:])

    with pytest.raises(ConfigError, match=r"logits of shape \(\d+, 10, \d+, \d+\); expected .*25 classes") as info:
        rsbench.evaluate(TenClasses(), "deliver-synth")
    assert "\n" not in str(info.value)


def test_header_check_finds_a_truncated_training_file_before_any_checkpoint(tmp_path: Path, tiny_card: Path) -> None:
    data = tmp_path / "deliver"
    assert run("data", "synth", "--like", "deliver", "--out", data, "--size", 32, "--n-train", 3, "--n-val", 2,
               "--n-test", 1).exit_code == 0
    victim = sorted((data / "event").glob("*/train/*/*.png"))[-1]
    victim.write_bytes(victim.read_bytes()[:-20])
    result = run("train", tiny_card, "-d", "deliver", "--root", data, "-p", "quick", "--out", tmp_path / "run")
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert line.startswith("rsbench: error: ") and "\n" not in line
    assert f"unreadable or truncated image: {victim} (no PNG end chunk)" in line and "before any compute" in line
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------ output
def test_plain_progress_prints_at_start_every_interval_and_at_the_end() -> None:
    from rsbench.progress import PlainProgress

    now = [0.0]
    console = Console(record=True, width=80, file=open(os.devnull, "w"))  # noqa: SIM115
    bar = PlainProgress(interval=30, clock=lambda: now[0], field_name="terms")
    bar.console = console
    with bar:
        task = bar.add_task("teacher", total=100, terms="")
        for it in range(1, 100):
            now[0] += 1.0  # one iteration per second: lines at 30, 60 and 90 s
            bar.update(task, completed=it, terms=f"loss {1 / it:.3f}")
        now[0] += 1.0
        bar.update(task, completed=100)
    lines = console.export_text().splitlines()
    assert lines[0] == "teacher: started (0 of 100)"
    assert [ln.split(":")[1].strip().split()[0] for ln in lines[1:4]] == ["30/100", "60/100", "90/100"]
    assert "about 0:00:10 left" in lines[3] and "loss 0.011" in lines[3]
    assert lines[4] == "teacher: 100/100 in 0:01:40" and len(lines) == 5


def test_tables_never_cut_subset_names_even_in_a_narrow_terminal() -> None:
    from rich.table import Table

    from rsbench.console import add_name_column

    names = ["rgb+depth+event+lidar", "depth+event+lidar"]
    table = Table()
    add_name_column(table, "condition", names)
    for col in ("teacher (emm)", "student (emm)", "teacher (emm-drop)", "student (emm-drop)"):
        table.add_column(col, justify="right")
    for name in names:
        table.add_row(name, "1.00", "2.00", "3.00", "4.00")
    console = Console(record=True, width=60, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(table)
    text = console.export_text()
    assert "…" not in text.split("┃")[1] and all(name in text for name in names), text


# --------------------------------------------------------------------------------------------- demo
def test_demo_scoring_reuses_records_of_the_same_checkpoint_and_card(tiny_run: tuple[Path, str]) -> None:
    from rsbench.cli.demo import _score
    from rsbench.protocols import resolve_protocols

    out, _ = tiny_run
    cards = resolve_protocols("full,emm")
    first = _score(out / "last.pt", cards, "cpu")
    files = sorted((out / "records").iterdir())
    again = _score(out / "last.pt", cards, "cpu")
    assert sorted((out / "records").iterdir()) == files and len(files) == 4  # two records and their .npz
    assert [p for p, _ in again] == [p for p, _ in first]
    assert [r["summary"] for _, r in again] == [r["summary"] for _, r in first]


def test_a_log_gets_the_status_line_a_spinner_would_show(tmp_path: Path) -> None:
    result = run("data", "synth", "--like", "deliver", "--out", tmp_path / "d", "--size", 32, "--n-train", 1,
                 "--n-val", 1, "--n-test", 1)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "generating deliver-synth ..."
    assert all(line.strip() for line in result.output.splitlines()), result.output
