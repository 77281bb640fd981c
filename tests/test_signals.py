"""Stop signals: SIGTERM, SIGUSR1, SIGUSR2 and Ctrl-C stop a run like the first Ctrl-C (finish the step,
checkpoint, say how to resume, release the lock, exit 128 + the signal's number), a repeat is counted once,
and the resume gives the uninterrupted weights; an interrupted evaluation names the records written and left."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from rsbench import signals
from rsbench.cards import load_card
from rsbench.runs import load_checkpoint
from rsbench.signals import EvaluationInterrupted, StopSignals, stop_signals
from rsbench.training import TrainingInterrupted, train
from rsbench.training.loop import LOCK_NAME
from tests.conftest import write_card
from tests.test_crash_safety import LONG, _start, _wait_for_checkpoint, _weights

ITERS = 200  # long enough that the signal lands mid-run on a fast machine (about 5 s of training)


@pytest.fixture(autouse=True)
def _handlers_back() -> Iterator[None]:
    """A command run in-process that was stopped leaves the stop signals ignored (it would exit now): undone."""
    before = {s: signal.getsignal(s) for s in signals.STOP_SIGNALS}
    yield
    for s, handler in before.items():
        signal.signal(s, handler)


@pytest.fixture(scope="module")
def long_card(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_card(tmp_path_factory.mktemp("signals") / "c.yaml", profiles={"quick": LONG})


@pytest.fixture(scope="module")
def uninterrupted(long_card: Path, tmp_path_factory: pytest.TempPathFactory, synth_cache: Path) -> dict:
    mp = pytest.MonkeyPatch()
    mp.setenv("RSBENCH_CACHE", str(synth_cache))
    try:
        card = load_card(str(long_card), "quick", {"iters": ITERS})
        return _weights(train(card, "deliver-synth", tmp_path_factory.mktemp("whole") / "run", progress=False)
                        .checkpoint)
    finally:
        mp.undo()


@pytest.mark.parametrize(("sent", "gap_s", "code", "resume"), [  # code: 128 + the signal's number
    ((signal.SIGTERM,), 0.0, 143, True),
    ((signal.SIGUSR1, signal.SIGUSR1), 0.05, 138, True),  # twice in quick succession (scheduler and torchrun)
    ((signal.SIGUSR2,), 0.0, 140, False),
    ((signal.SIGINT, signal.SIGINT), 0.3, 130, False),  # a second Ctrl-C no longer aborts
    ((signal.SIGTERM, signal.SIGINT), 0.0, None, False),  # two kinds at once: whichever Python handles first counts
], ids=["term", "usr1-twice", "usr2", "int-twice", "term-then-int"])
def test_a_stop_signal_checkpoints_releases_the_lock_and_resumes_to_the_uninterrupted_weights(
        sent: tuple[signal.Signals, ...], gap_s: float, code: int | None, resume: bool, long_card: Path,
        request: pytest.FixtureRequest, tmp_path: Path, synth_cache: Path) -> None:
    """Every signal takes the same path (only its name and code differ): the resume is compared for two."""
    out = tmp_path / "run"
    proc = _start(["train", str(long_card), "-d", "deliver-synth", "-p", "quick", "--iters", str(ITERS), "--out",
                   str(out), "--threads", "1"], synth_cache)
    _wait_for_checkpoint(out / "last.pt", proc)
    for i, s in enumerate(sent):
        if i:
            time.sleep(gap_s)
        proc.send_signal(s)
    stdout, stderr = proc.communicate(timeout=120)
    named = sent[0] if code is not None else next(s for s in sent if f"({s.name})" in stdout)
    assert proc.returncode == (code if code is not None else 128 + named), (stdout, stderr)
    it = load_checkpoint(out / "last.pt")["iter"]
    assert 5 <= it < ITERS
    assert f"interrupted at iteration {it} of {ITERS} ({named.name}); checkpoint: {out / 'last.pt'}" in stdout
    assert f"resume with: rsbench train {long_card} -d deliver-synth -p quick --out {out} --iters {ITERS} " \
           "--resume" in stdout
    assert "Traceback" not in stderr and not (out / LOCK_NAME).exists()
    if resume:
        uninterrupted = request.getfixturevalue("uninterrupted")
        card = load_card(str(long_card), "quick", {"iters": ITERS})
        resumed = _weights(train(card, "deliver-synth", out, resume=True, progress=False).checkpoint)
        assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)


def test_a_signal_during_a_step_stops_at_its_end_and_a_slow_first_step_shows_the_eta(
        tmp_path: Path, tiny_card: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The paper profile on a CPU: minutes per step, so the ETA comes after the first step (when it took over
    ETA_AFTER_S, here 0) and a stop is honoured at the end of the step it arrived in (not at a sync point)."""
    from rsbench.training import loop

    monkeypatch.setattr(loop, "ETA_AFTER_S", 0.0)
    card = load_card(str(tiny_card), "quick", {"iters": 14, "ckpt_interval": 7, "val_interval": 7})
    notes: list[str] = []

    def notify(message: str) -> None:
        notes.append(message)
        if message.startswith("estimated: "):  # said after the first step: a scheduler's signal arrives now
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted) as stop:
        train(card, "deliver-synth", tmp_path / "run", progress=False, profile="paper", device="cpu", notify=notify)
    assert "--profile quick" in notes[0]
    assert notes[1].startswith("estimated: ") and "for the remaining 13 iterations" in notes[1] and \
        "from the first" in notes[1]
    assert (stop.value.iteration, stop.value.signal, stop.value.exit_code) == (1, "SIGTERM", 143)
    assert load_checkpoint(tmp_path / "run" / "last.pt")["iter"] == 1
    assert not (tmp_path / "run" / LOCK_NAME).exists()
    assert signal.getsignal(signal.SIGTERM) is before  # the handlers are put back


def test_a_signal_before_the_first_step_checkpoints_iteration_0_and_resumes_exactly(
        tmp_path: Path, tiny_card: Path) -> None:
    card = load_card(str(tiny_card), "quick")

    def notify(message: str) -> None:  # the paper profile's first line comes before the loop
        os.kill(os.getpid(), signal.SIGUSR1)

    with pytest.raises(TrainingInterrupted) as stop:
        train(card, "deliver-synth", tmp_path / "run", progress=False, profile="paper", device="cpu", notify=notify)
    assert (stop.value.iteration, stop.value.exit_code) == (0, 138)
    assert load_checkpoint(tmp_path / "run" / "last.pt")["iter"] == 0
    resumed = _weights(train(card, "deliver-synth", tmp_path / "run", resume=True, progress=False).checkpoint)
    whole = _weights(train(card, "deliver-synth", tmp_path / "whole", progress=False).checkpoint)
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)


def test_repeats_count_once_and_a_late_one_says_the_stop_is_under_way(capfd: pytest.CaptureFixture,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    stop = StopSignals()
    stop.request(signal.SIGUSR1)
    stop.request(signal.SIGUSR1)
    stop.request(signal.SIGTERM)
    assert (stop.name, stop.exit_code, stop.repeats) == ("SIGUSR1", 138, 2)
    assert capfd.readouterr().err == ""  # quick repeats: silent
    monkeypatch.setattr(signals, "REPEAT_WINDOW_S", 0.0)
    stop.request(signal.SIGINT)
    stop.request(signal.SIGINT)
    err = capfd.readouterr().err
    assert err.count("already stopping (SIGUSR1, then SIGINT)") == 1 and "SIGKILL" in err
    with stop_signals() as outer, stop_signals() as inner:  # one request per command, nested calls share it
        assert inner is outer and signal.getsignal(signal.SIGUSR2) == outer._handler
    assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, synth_cache: Path) -> Path:
    mp = pytest.MonkeyPatch()
    mp.setenv("RSBENCH_CACHE", str(synth_cache))
    try:
        folder = tmp_path_factory.mktemp("eval-signals")
        card = load_card(str(write_card(folder / "c.yaml")), "quick")
        return train(card, "deliver-synth", folder / "run", progress=False).checkpoint
    finally:
        mp.undo()


@pytest.mark.parametrize("during", ["protocol", "record"])
def test_an_interrupted_evaluation_names_what_it_wrote_and_what_it_left(
        during: str, tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A signal while the second protocol runs ends it at once; one while a record is written waits for it."""
    from typer.testing import CliRunner

    from rsbench.cli import app
    from rsbench.protocols import checkpoint as module
    from rsbench.results import read_per_image, read_record

    calls = {"run": 0, "write": 0}
    run, write = module.run_protocol, module.record_checkpoint_evaluation

    def run_protocol(*args: object, **kwargs: object) -> object:
        calls["run"] += 1
        if during == "protocol" and calls["run"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return run(*args, **kwargs)

    def record(*args: object, **kwargs: object) -> Path:
        calls["write"] += 1
        if during == "record" and calls["write"] == 2:
            os.kill(os.getpid(), signal.SIGUSR2)  # in the middle of writing the second record
            os.kill(os.getpid(), signal.SIGUSR2)
        return write(*args, **kwargs)

    monkeypatch.setattr(module, "run_protocol", run_protocol)
    monkeypatch.setattr(module, "record_checkpoint_evaluation", record)
    out = tmp_path / "records"
    res = CliRunner().invoke(app, ["eval", "--checkpoint", str(tiny_checkpoint), "--protocol", "full,rmm-25,rmm-50",
                                   "--out", str(out), "--threads", "1"])
    if during == "protocol":
        assert res.exit_code == 143, res.output
        assert f"interrupted (SIGTERM): wrote {out / 'full.json'}; not written: rmm-25, rmm-50" in res.output
        written = ["full"]
    else:
        assert res.exit_code == 140, res.output
        assert f"interrupted (SIGUSR2): wrote {out / 'full.json'}, {out / 'rmm-25.json'}; not written: rmm-50" \
            in res.output
        written = ["full", "rmm-25"]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.{e}" for n in written for e in ("json", "npz"))
    for name in written:  # whole records, with their per-image counts
        assert read_record(out / f"{name}.json")["protocol"] == name
        assert read_per_image(out / f"{name}.json")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN  # a repeat cannot change the exit status now


def test_evaluate_checkpoint_raises_with_the_records_written(tiny_checkpoint: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from rsbench.protocols import checkpoint as module
    from rsbench.protocols.checkpoint import evaluate_checkpoint

    run = module.run_protocol

    def run_protocol(*args: object, **kwargs: object) -> object:
        os.kill(os.getpid(), signal.SIGINT)
        return run(*args, **kwargs)

    monkeypatch.setattr(module, "run_protocol", run_protocol)
    with pytest.raises(EvaluationInterrupted) as stop:
        evaluate_checkpoint(tiny_checkpoint, ["full", "rmm-25"], out=tmp_path / "r")
    assert (stop.value.written, stop.value.left, stop.value.exit_code) == ([], ["full", "rmm-25"], 130)
    assert str(stop.value) == "interrupted (SIGINT): no record written; not written: full, rmm-25"
    assert isinstance(stop.value, KeyboardInterrupt)  # a library caller's Ctrl-C handling still applies
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # and its handlers are back


def _children(pid: int) -> list[int]:
    from rsbench.cli.train import _children

    return _children(pid)


def test_nproc_2_stops_every_rank_on_a_schedulers_signal(long_card: Path, tmp_path: Path, synth_cache: Path) -> None:
    """``rsbench train --nproc 2``: SIGUSR1 to every process, as a scheduler sends it (each rank then gets it three
    times: directly, from torchrun and from the launcher): the ranks agree on one step, the launcher exits 138."""
    out = tmp_path / "run"
    proc = _start(["train", str(long_card), "-d", "deliver-synth", "-p", "quick", "--iters", "400", "--out", str(out),
                   "--threads", "1", "--nproc", "2"], synth_cache)
    _wait_for_checkpoint(out / "last.pt", proc)
    torchrun = _children(proc.pid)
    ranks = [r for t in torchrun for r in _children(t)]
    assert len(torchrun) == 1 and len(ranks) == 2
    for pid in [proc.pid, *torchrun, *ranks]:
        os.kill(pid, signal.SIGUSR1)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 138, (stdout, stderr)
    it = load_checkpoint(out / "last.pt")["iter"]
    assert f"interrupted at iteration {it} of 400 (SIGUSR1)" in stdout and "--nproc 2 --resume" in stdout
    assert "Traceback" not in stderr + stdout and not (out / LOCK_NAME).exists()
