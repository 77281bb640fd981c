"""CUDA paths: mixed precision with its scaler, nccl under torchrun with 1 process, the per-step device noise
generator. Run where a GPU is present (``benchmarks/gpu_check.sh``); skipped elsewhere (they need CUDA)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rsbench.cards import load_card
from rsbench.runs import load_checkpoint
from rsbench.training import train
from rsbench.training.step import TrainStep

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_amp_training_resumes_with_its_scaler(tmp_path: Path, tiny_card: Path) -> None:
    card = load_card(str(tiny_card), "quick", {"amp": True})
    res = train(card, "deliver-synth", tmp_path / "run", device="cuda", progress=False, stop_after=3)
    ckpt = load_checkpoint(res.checkpoint)
    assert ckpt["scaler"]["scale"] > 0 and "cuda" in ckpt["rng"]
    done = train(card, "deliver-synth", tmp_path / "run", device="cuda", progress=False, resume=True)
    assert done.complete and all(torch.isfinite(v).all() for v in load_checkpoint(done.checkpoint)["model"].values()
                                 if v.is_floating_point())


def test_nccl_with_one_process(tmp_path: Path, tiny_card: Path, synth_cache: Path) -> None:
    env = {**os.environ, "RSBENCH_CACHE": str(synth_cache)}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1", "-m",
                          "rsbench", "train", str(tiny_card), "-d", "deliver-synth", "-p", "quick", "--out",
                          str(tmp_path / "run"), "--device", "cuda"], env=env, capture_output=True, text=True,
                         timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert load_checkpoint(tmp_path / "run" / "last.pt")["complete"]


def test_noise_generator_lives_on_the_device_and_is_seeded_from_the_loss_generator() -> None:
    step = TrainStep(torch.nn.Identity(), None, {}, {}, fill="drop", modality_dropout=False, num_modalities=2, seed=0)
    state = step.loss_gen.get_state()
    a = step._noise_generator(torch.device("cuda"))
    step.loss_gen.set_state(state)
    b = step._noise_generator(torch.device("cuda"))
    assert a.device.type == "cuda"
    assert torch.equal(torch.randn(4, device="cuda", generator=a), torch.randn(4, device="cuda", generator=b))
