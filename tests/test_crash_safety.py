"""Runs that die: SIGKILL mid-training resumes to the uninterrupted weights, a kill leaves no partial record,
a torn or corrupted checkpoint falls back to the previous one, Ctrl-C checkpoints and exits 130, two runs never
share a folder, and DataLoader workers draw every epoch's own augmentation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from rsbench.cards import load_card
from rsbench.errors import ConfigError
from rsbench.results import read_per_image, validate_record
from rsbench.runs import load_checkpoint
from rsbench.training import train
from rsbench.training.loop import LOCK_NAME
from tests.conftest import write_card

LONG = {"crop": 32, "batch_size": 2, "iters": 400, "warmup_iters": 2, "val_interval": 1000, "ckpt_interval": 5,
        "amp": False, "synth": {"size": 32, "n_train": 8, "n_val": 4, "n_test": 4, "seed": 0}}


def _start(args: list[str], cache: Path) -> subprocess.Popen:
    env = {**os.environ, "RSBENCH_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "rsbench", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(path: Path, proc: subprocess.Popen, at_least: int = 5) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        if path.is_file():
            try:
                if load_checkpoint(path)["iter"] >= at_least:
                    return
            except ConfigError:
                pass  # being replaced right now
        time.sleep(0.1)
    raise AssertionError("no checkpoint appeared")


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def test_sigkill_mid_training_then_resume_gives_the_uninterrupted_weights(tmp_path: Path, synth_cache: Path) -> None:
    card_path = write_card(tmp_path / "c.yaml", profiles={"quick": LONG})
    iters = 200  # long enough that the kill lands mid-run on a fast machine
    proc = _start(["train", str(card_path), "-d", "deliver-synth", "-p", "quick", "--iters", str(iters), "--out",
                   str(tmp_path / "killed"), "--threads", "1"], synth_cache)
    _wait_for_checkpoint(tmp_path / "killed" / "last.pt", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = load_checkpoint(tmp_path / "killed" / "last.pt")["iter"]
    assert 5 <= done < iters
    card = load_card(str(card_path), "quick", {"iters": iters})
    # the lock file of the dead run does not block the resume: its pid is gone
    assert (tmp_path / "killed" / LOCK_NAME).is_file()
    resumed = train(card, "deliver-synth", tmp_path / "killed", resume=True, progress=False)
    whole = train(card, "deliver-synth", tmp_path / "whole", progress=False)
    a, b = _weights(resumed.checkpoint), _weights(whole.checkpoint)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not (tmp_path / "killed" / LOCK_NAME).exists()


def test_a_torn_write_or_a_corrupted_checkpoint_falls_back_to_the_previous_one(tmp_path: Path, tiny_card: Path) -> None:
    card = load_card(str(tiny_card), "quick")  # 6 iterations, a checkpoint every 3
    train(card, "deliver-synth", tmp_path / "run", progress=False, stop_after=6)
    last, prev = tmp_path / "run" / "last.pt", tmp_path / "run" / "last.pt.prev"
    assert load_checkpoint(last)["iter"] == 6 and load_checkpoint(prev)["iter"] == 3
    (tmp_path / "run" / ".last.pt.x1y2.tmp").write_bytes(b"half a checkpoint")  # what a kill mid-write leaves
    last.write_bytes(last.read_bytes()[:1000])  # and a checkpoint damaged after its write
    longer = load_card(str(tiny_card), "quick", {"iters": 9})
    notes: list[str] = []
    res = train(longer, "deliver-synth", tmp_path / "run", resume=True, progress=False, notify=notes.append)
    assert res.iteration == 9 and load_checkpoint(last)["iter"] == 9
    assert any("unreadable; resuming from the previous checkpoint" in n for n in notes)
    assert any("schedule extended from 6 to 9 iterations at iteration 3" in n for n in notes)
    assert load_checkpoint(last)["schedule"] == [{"at": 3, "iters": 9, "was": 6}]


def test_a_killed_evaluation_leaves_a_whole_record_or_none(tmp_path: Path, synth_cache: Path, tiny_card: Path) -> None:
    ckpt = train(load_card(str(tiny_card), "quick"), "deliver-synth", tmp_path / "run", progress=False).checkpoint
    args = ["eval", "--checkpoint", str(ckpt), "--protocol", "emm", "--threads", "1"]
    t0 = time.time()
    full = _start([*args, "--out", str(tmp_path / "full.json")], synth_cache)
    assert full.wait(timeout=300) == 0, full.communicate()
    span = time.time() - t0
    outcomes = set()
    for i, frac in enumerate((0.3, 0.6, 0.8, 0.9, 0.97)):
        out = tmp_path / f"k{i}.json"
        proc = _start([*args, "--out", str(out)], synth_cache)
        time.sleep(span * frac)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if out.exists():  # finished before the kill: then whole, with its per-image counts
            validate_record(json.loads(out.read_text()), out)
            assert read_per_image(out)
            outcomes.add("whole")
        else:
            assert not out.with_suffix(".npz").exists()
            outcomes.add("none")
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(f"k{i}") and p != out
                    and p != out.with_suffix(".npz")]
    assert "none" in outcomes  # at least one kill landed during the evaluation


def test_ctrl_c_writes_a_checkpoint_says_how_to_resume_and_exits_130(tmp_path: Path, synth_cache: Path) -> None:
    card_path = write_card(tmp_path / "c.yaml", profiles={"quick": LONG})
    out = tmp_path / "run"
    proc = _start(["train", str(card_path), "-d", "deliver-synth", "-p", "quick", "--out", str(out), "--threads",
                   "1"], synth_cache)
    _wait_for_checkpoint(out / "last.pt", proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    it = load_checkpoint(out / "last.pt")["iter"]
    assert 5 <= it < 400
    assert f"interrupted at iteration {it} of 400" in stdout
    assert f"resume with: rsbench train {card_path} -d deliver-synth -p quick --out {out} --resume" in stdout
    assert "Traceback" not in stderr and not (out / LOCK_NAME).exists()


def test_stop_after_says_where_it_stopped(tmp_path: Path, tiny_card: Path) -> None:
    from typer.testing import CliRunner

    from rsbench.cli import app

    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", str(tiny_card), "-d", "deliver-synth", "-p", "quick", "--out", str(out),
                                   "--stop-after", "2", "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert "stopped at iteration 2 of 6" in res.output and "resume with:" in res.output and "done" not in res.output
    res = CliRunner().invoke(app, ["train", str(tiny_card), "-d", "deliver-synth", "-p", "quick", "--out", str(out),
                                   "--resume", "--iters", "8", "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert "schedule extended from 6 to 8 iterations at iteration 2" in res.output
    assert "done: 8 iterations" in res.output


def test_a_second_run_on_the_same_folder_refuses(tmp_path: Path, tiny_card: Path) -> None:
    card = load_card(str(tiny_card), "quick")
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_NAME).write_text(f"{os.getpid()} {os.uname().nodename}\n")  # a live owner
    with pytest.raises(ConfigError, match=rf"in use by another run \(pid {os.getpid()}, lock file"):
        train(card, "deliver-synth", out, progress=False)
    assert [p.name for p in out.iterdir()] == [LOCK_NAME]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / LOCK_NAME).write_text(f"{dead.stdout.strip()} {os.uname().nodename}\n")  # its owner is gone
    assert train(card, "deliver-synth", out, progress=False).complete


def test_a_run_prints_its_estimated_duration_and_the_paper_profile_warns_on_cpu(tmp_path: Path,
                                                                                 tiny_card: Path) -> None:
    notes: list[str] = []
    card = load_card(str(tiny_card), "quick", {"iters": 14})
    train(card, "deliver-synth", tmp_path / "run", progress=False, profile="paper", device="cpu",
          notify=notes.append)
    assert "--profile quick" in notes[0] and "14 iterations" in notes[0]
    assert any(n.startswith("estimated: ") and "for the remaining 3 iterations" in n for n in notes)


def test_workers_draw_each_epochs_own_augmentation(synth_cache: Path) -> None:
    """Regression: with workers, every epoch used to repeat epoch 0's draws (set_epoch never reached them)."""
    from rsbench.data import create_dataset
    from rsbench.data.sampler import EpochBatches
    from rsbench.data.transforms import PairedAugment, SeededAugmented, collate

    ds = create_dataset("deliver-synth", split="train", synth={"size": 32, "n_train": 4, "n_val": 2, "n_test": 2,
                                                                "seed": 0})
    aug = SeededAugmented(ds, PairedAugment(24), seed=0)

    def epochs(workers: int) -> list[dict[str, torch.Tensor]]:
        """Per epoch: each sample id's augmented label (the order within an epoch is a separate draw)."""
        batches = EpochBatches(len(ds), 4, seed=0, start_iter=0, total_iters=3)  # one batch per epoch, 3 epochs
        loader = DataLoader(aug, batch_sampler=batches, num_workers=workers, collate_fn=collate)
        return [dict(zip(b["meta"]["id"], b["label"], strict=True)) for b in loader]

    with_workers, alone = epochs(2), epochs(0)
    for a, b in zip(with_workers, alone, strict=True):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for sample in with_workers[0]:
        draws = [e[sample] for e in with_workers]
        assert not torch.equal(draws[0], draws[1]) and not torch.equal(draws[1], draws[2]), sample
