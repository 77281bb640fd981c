"""A catalogue of bad inputs, each run through the real CLI.

Every row must end with exactly one non-empty stderr line ``rsbench: error: ...`` (no traceback), the
expected message, the expected exit code, and nothing written: no new, changed or removed file or folder
in the working folder, the shared runs, data and records of this module, or the generated-data cache.

How to add a row: append ``Row(id, setup, expect)`` to ``ROWS`` (``code=`` when the exit code is not 2,
``via="subprocess"`` to run ``python -m rsbench`` instead of Typer's in-process runner, ``marks=`` for a
strict xfail). ``setup(ctx)`` makes the bad input inside ``ctx.tmp`` (an empty folder that is also the
working directory) from the module's tiny artefacts (``ctx.art``: a checkpoint and a data folder per
dataset, a record with its ``.npz``, cards) and returns the command line after ``rsbench``. ``expect`` is a regex
searched in the single error line.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rsbench.cli import app
from tests.conftest import write_card

runner = CliRunner()


# ---------------------------------------------------------------------------------------------- artefacts
@dataclass(frozen=True)
class Artefacts:
    """Made once per module: tiny runs, a DELIVER-layout folder, a record, cards."""

    root: Path
    card: Path  # tiny teacher card
    student: Path  # tiny student card (kd from the tiny teacher)
    ckpts: dict[str, Path]  # base dataset -> a tiny teacher trained on its -synth set, all modalities
    ckpt_rgbd: Path  # teacher on deliver-synth, rgb+depth only
    data: dict[str, Path]  # base dataset -> its layout, 32 px, 2 train / 2 val / 1 test
    record: Path  # an emm record of the deliver checkpoint (with its .npz)

    @property
    def ckpt(self) -> Path:
        return self.ckpts["deliver"]

    @property
    def ckpt_muses(self) -> Path:
        return self.ckpts["muses"]


@dataclass
class Ctx:
    tmp: Path
    art: Artefacts

    @property
    def marker(self) -> Path:
        """The file a malicious pickle tries to create."""
        return self.tmp / "PWNED"


class Evil:
    """Unpickling this object creates ``path`` (``open(path, "w")``): code from the file would run."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def _cli(*args: object) -> None:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def art(tmp_path_factory: pytest.TempPathFactory, synth_cache: Path) -> Artefacts:
    from rsbench.data.synth import synthesize

    root = tmp_path_factory.mktemp("bad-input-artefacts")
    mp = pytest.MonkeyPatch()
    mp.setenv("RSBENCH_CACHE", str(synth_cache))
    try:
        card = write_card(root / "tiny.yaml")
        student = write_card(root / "student.yaml", stage="student", teacher=str(card), modality_dropout=True,
                             losses={"ohem_ce": 1.0, "kd": 1.0})
        quick = ("-p", "quick", "--iters", "2")
        ckpts, data = {}, {}
        for base in ("deliver", "muses", "mcubes"):
            _cli("train", card, "-d", f"{base}-synth", *quick, "--out", root / f"run-{base}")
            ckpts[base] = root / f"run-{base}" / "last.pt"
            data[base] = root / base
            synthesize(base, data[base], size=32, n_train=2, n_val=2, n_test=1, seed=0)
        _cli("train", card, "-d", "deliver-synth", *quick, "--modalities", "rgb,depth", "--out", root / "run-rgbd")
        record = root / "rec" / "emm.json"
        _cli("eval", "--checkpoint", ckpts["deliver"], "--protocol", "emm", "--out", record)
    finally:
        mp.undo()
    return Artefacts(root, card, student, ckpts, root / "run-rgbd" / "last.pt", data, record)


# ------------------------------------------------------------------------------------------------ helpers
def data_copy(ctx: Ctx, base: str = "deliver") -> Path:
    """A private copy of a dataset folder to break."""
    dest = ctx.tmp / base
    shutil.copytree(ctx.art.data[base], dest)
    return dest


def val_file(root: Path, folder: str) -> Path:
    """The first val file of a DELIVER top folder (img, hha, event, lidar, semantic)."""
    return sorted((root / folder).glob("*/val/*/*.png"))[0]


def eval_on(root: Path, ctx: Ctx, base: str = "deliver") -> list[object]:
    """Score the module's checkpoint of ``base`` on a folder (the default record path lies in the shared run)."""
    return ["eval", "--checkpoint", ctx.art.ckpts[base], "-d", base, "--root", root]


def with_data(change: Callable[[Path], Any], base: str = "deliver") -> Callable[[Ctx], list[object]]:
    """A setup that breaks a copy of the ``base`` data with ``change`` and evaluates on it."""

    def setup(ctx: Ctx) -> list[object]:
        root = data_copy(ctx, base)
        change(root)
        return eval_on(root, ctx, base)

    return setup


def first(root: Path, pattern: str) -> Path:
    return sorted(root.glob(pattern))[0]


def mcubes_val(root: Path, folder: str) -> Path:
    """The ``.npy`` file of the first MCubeS val sample in ``folder``."""
    name = (root / "list_folder" / "val.txt").read_text().split()[0]
    return root / folder / f"{name}.npy"


def _truncate_first_train_png(root: Path) -> Path:
    """``root`` with its first LiDAR training image cut short (header intact: only a full read would notice)."""
    victim = sorted((root / "lidar").glob("*/train/*/*.png"))[0]
    victim.write_bytes(victim.read_bytes()[:60])
    return root


def write_png(path: Path, img: np.ndarray) -> None:
    from rsbench.io import write_png as _write

    _write(path, img)


def refill(path: Path, value: int, dtype: type = np.uint8, channels: int | None = None) -> None:
    """Rewrite a PNG at its own height and width, filled with ``value`` (``channels``: None keeps it 2-D)."""
    from rsbench.io import png_size

    h, w = png_size(path)
    write_png(path, np.full((h, w) if channels is None else (h, w, channels), value, dtype))


def card_file(ctx: Ctx, name: str = "card.yaml", text: str | None = None, **overrides: Any) -> Path:
    """A tiny card in ``ctx.tmp``: raw ``text``, or the tiny teacher card with ``overrides``."""
    path = ctx.tmp / name
    if text is not None:
        path.write_text(text)
        return path
    return write_card(path, **overrides)


RELEASED = Path(__file__).parent / "released"
CMNEXT_25_CLASSES = RELEASED / "cmnext_tiny_deliver25.pth"  # written by the released code
CMNEXT_5_CLASSES = RELEASED / "cmnext_tiny_m4.pth"


def weights_eval(ctx: Ctx, *extra: object, weights: Path = CMNEXT_25_CLASSES) -> list[object]:
    """``rsbench eval --weights <a released-layout CMNeXt file> -d deliver --root <data> <extra>``."""
    return ["eval", "--weights", weights, "-d", "deliver", "--root", ctx.art.data["deliver"],
            "--out", ctx.tmp / "r.json", *extra]


def train_card(path: Path, ctx: Ctx, *extra: object) -> list[object]:
    return ["train", path, "-d", "deliver-synth", "-p", "quick", "--out", ctx.tmp / "out", *extra]


def train_opts(*extra: object) -> Callable[[Ctx], list[object]]:
    """``rsbench train <tiny card> ... <extra>``."""
    return lambda ctx: train_card(ctx.art.card, ctx, *extra)


def student_with(teacher: Callable[[Ctx], Path]) -> Callable[[Ctx], list[object]]:
    return lambda ctx: train_card(ctx.art.student, ctx, "--teacher", teacher(ctx))


def bad_ckpt(make: Callable[[Ctx, Path], None], name: str = "bad.pt") -> Callable[[Ctx], Path]:
    def path(ctx: Ctx) -> Path:
        p = ctx.tmp / name
        make(ctx, p)
        return p

    return path


def _truncated(ctx: Ctx, p: Path) -> None:
    data = ctx.art.ckpt.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _evil(ctx: Ctx, p: Path) -> None:
    torch.save({"model": Evil(ctx.marker), "card": {}}, p)


def _evil_npz(ctx: Ctx) -> Path:
    """A record whose per-image ``.npz`` holds a pickled object that would create the marker."""
    rec = record_copy(ctx)
    np.savez(rec.with_suffix(".npz"), condition_keys=np.array([Evil(ctx.marker)], dtype=object))
    return rec


def _not_rsbench(ctx: Ctx, p: Path) -> None:
    torch.save({"weights": torch.zeros(2)}, p)


def record_copy(ctx: Ctx, change: Callable[[dict], Any] | None = None, text: str | None = None,
                npz: bool = True) -> Path:
    """A copy of the module's record (and .npz) in ``ctx.tmp/records``, changed or replaced by ``text``."""
    folder = ctx.tmp / "records"
    folder.mkdir()
    dest = folder / "emm.json"
    if npz:
        shutil.copyfile(ctx.art.record.with_suffix(".npz"), dest.with_suffix(".npz"))
    if text is not None:
        dest.write_text(text)
        return dest
    rec = json.loads(ctx.art.record.read_text())
    if change is not None:
        change(rec)
    dest.write_text(json.dumps(rec))
    return dest


def _drop(key: str) -> Callable[[dict], None]:
    return lambda rec: rec.pop(key)


def _set(key: str, value: Any) -> Callable[[dict], None]:
    return lambda rec: rec.__setitem__(key, value)


def _truncated_json(ctx: Ctx) -> Path:
    text = ctx.art.record.read_text()
    return record_copy(ctx, text=text[: len(text) // 2])


def folder_with(ctx: Ctx, name: str, text: str) -> Path:
    """``ctx.tmp/records``: a valid record plus ``name`` holding ``text``."""
    folder = record_copy(ctx).parent
    (folder / name).write_text(text)
    return folder


def edited_table(ctx: Ctx) -> Path:
    """A leaderboard root built from a valid record, whose generated Markdown table was then edited by hand."""
    root = ctx.tmp / "lb"
    shutil.copytree(record_copy(ctx).parent, root / "records" / "deliver-synth" / "tiny")
    result = runner.invoke(app, ["leaderboard", "build", "--root", str(root)])
    assert result.exit_code == 0, result.output
    table = root / "deliver-synth.md"
    table.write_text(table.read_text().replace("tiny", "mine"))
    return root


def store_with(ctx: Ctx, text: str) -> Path:
    """A leaderboard root whose store holds a valid record and a broken one (``text``)."""
    root = ctx.tmp / "lb"
    folder = root / "records" / "deliver-synth" / "tiny"
    shutil.copytree(record_copy(ctx).parent, folder)
    (folder / "broken.json").write_text(text)
    return root


# --------------------------------------------------------------------------------------------------- rows
@dataclass(frozen=True)
class Row:
    id: str
    setup: Callable[[Ctx], Sequence[object]]
    expect: str
    code: int = 2
    via: str = "runner"
    marks: tuple = field(default=())


ROWS: list[Row] = [
    # ---- data
    Row("data-root-missing", lambda c: ["data", "check", "-d", "deliver", "--root", c.tmp / "nope"],
        r"deliver not found at .*nope.*deliver-synth"),
    Row("data-root-without-layout", lambda c: eval_on(c.tmp, c), r"deliver not found at"),
    Row("data-real-without-root", lambda c: ["eval", "--checkpoint", c.art.ckpt, "-d", "deliver"],
        r"deliver needs --root"),
    Row("data-unknown-dataset", lambda c: ["eval", "--checkpoint", c.art.ckpt, "-d", "delivr"],
        r"unknown dataset 'delivr'; did you mean deliver"),
    Row("data-split-empty", with_data(lambda r: [shutil.rmtree(d) for d in (r / "img").glob("*/val")]),
        r"split 'val' is empty under"),
    Row("data-truncated-png", with_data(lambda r: val_file(r, "lidar").write_bytes(
        val_file(r, "lidar").read_bytes()[:60])), r"unreadable or truncated image: .*lidar_front\.png",
        via="subprocess"),  # a subprocess, so that a decoder warning on the real stderr counts as a second line
    Row("data-zero-byte-png", with_data(lambda r: val_file(r, "hha").write_bytes(b"")),
        r"unreadable or truncated image: .*depth_front\.png"),
    Row("data-zero-byte-rgb", with_data(lambda r: val_file(r, "img").write_bytes(b"")),
        r"(not a PNG file|unreadable or truncated image): .*rgb_front\.png"),
    Row("data-wrong-size", with_data(lambda r: write_png(val_file(r, "event"), np.zeros((16, 16), np.uint8))),
        r"event_front\.png: size 16x16 differs from the RGB 32x32"),
    Row("data-label-out-of-range", with_data(lambda r: write_png(val_file(r, "semantic"),
                                                                 np.full((32, 32), 200, np.uint8))),
        r"raw label id 200 out of range"),
    Row("data-label-16-bit", with_data(lambda r: write_png(val_file(r, "semantic"), np.ones((32, 32), np.uint16))),
        r"expected an 8-bit PNG"),
    Row("data-missing-partner", with_data(lambda r: val_file(r, "hha").unlink()),
        r"missing file: .*hha/.*depth_front\.png"),
    Row("data-train-label-out-of-range",
        lambda c: (write_png(first(d := data_copy(c), "semantic/*/train/*/*.png"), np.full((32, 32), 99, np.uint8)),
                   ["train", c.art.card, "-d", "deliver", "--root", d, "-p", "quick", "--iters", "2",
                    "--out", c.tmp / "out"])[1],
        r"raw label id 99 out of range"),
    Row("muses-lidar-8-bit",
        with_data(lambda r: refill(first(r, "projected_to_rgb/lidar/val/*/*/*.png"), 0, channels=3), "muses"),
        r"lidar\.png: expected a 16-bit 3-channel projected lidar PNG .*got 8-bit"),
    Row("muses-label-out-of-range", with_data(lambda r: refill(first(r, "gt_semantic/val/*/*/*.png"), 40), "muses"),
        r"gt_semantic/val/.*labelTrainIds\.png: label id 40 out of range 0\.\.18"),
    Row("muses-meta-json-truncated", with_data(lambda r: (r / "meta.json").write_text('{"REC'), "muses"),
        r"unreadable meta\.json"),
    Row("muses-missing-partner", with_data(lambda r: first(r, "projected_to_rgb/event_camera/val/*/*/*.png").unlink(),
                                           "muses"), r"missing file: .*event_camera\.png"),
    Row("mcubes-missing-split-list", with_data(lambda r: (r / "list_folder" / "val.txt").unlink(), "mcubes"),
        r"missing split list .*val\.txt"),
    Row("mcubes-list-names-a-missing-sample",
        with_data(lambda r: (r / "list_folder" / "val.txt").write_text("ghost_0001\n"), "mcubes"),
        r"missing file:? .*polL_color/ghost_0001\.png"),
    Row("mcubes-npy-truncated", with_data(lambda r: mcubes_val(r, "polL_aolp_sin").write_bytes(b"\x93NUMPY\x01"),
                                          "mcubes"), r"unreadable \.npy file"),
    Row("mcubes-npy-holds-a-pickle",
        lambda c: (r := data_copy(c, "mcubes"),
                   [np.save(p, np.array([Evil(c.marker)], dtype=object), allow_pickle=True)
                    for p in r.glob("polL_dolp/*.npy")],
                   eval_on(r, c, "mcubes"))[-1],
        r"polL_dolp/.*\.npy.*(holds Python objects|Object arrays cannot be loaded when allow_pickle=False)"),
    Row("data-check-unknown-split",
        lambda c: ["data", "check", "-d", "deliver", "--root", c.art.data["deliver"], "--splits", "train,dev"],
        r"unknown split 'dev'"),
    Row("data-synth-out-not-empty",
        lambda c: (c.tmp.joinpath("keep.txt").write_text("x"),
                   ["data", "synth", "--like", "deliver", "--out", c.tmp])[1],
        r"not an empty folder"),
    Row("data-synth-bad-size", lambda c: ["data", "synth", "--like", "deliver", "--out", c.tmp / "s", "--size", "36"],
        r"size must be a multiple of 8"),
    # ---- method and protocol cards
    Row("card-unknown-key", lambda c: train_card(card_file(c, lr_rate=0.1), c),
        r"card\.yaml: unknown key 'lr_rate'"),
    Row("card-typo-key", lambda c: train_card(card_file(c, itres=5), c),
        r"unknown key 'itres' \(did you mean 'iters'\?\)"),
    Row("card-wrong-type", lambda c: train_card(card_file(c, iters="many"), c),
        r"card key 'iters': expected an integer, got 'many'"),
    Row("card-wrong-literal", lambda c: train_card(card_file(c, fill="mean"), c),
        r"card key 'fill': 'mean' is not one of drop, zero"),
    Row("card-renamed-key", lambda c: train_card(card_file(c, missing="zero"), c),
        r"card key 'missing' is now called 'fill'"),
    Row("card-invalid-yaml", lambda c: train_card(card_file(c, text="model: [unclosed\nlr: 1\n"), c),
        r"card\.yaml: not valid YAML"),
    Row("card-not-a-mapping", lambda c: train_card(card_file(c, text="- teacher\n- quick\n"), c),
        r"a card must be a mapping"),
    Row("card-empty-file", lambda c: train_card(card_file(c, text=""), c), r"a card must be a mapping"),
    Row("card-profiles-not-a-mapping", lambda c: train_card(card_file(c, text="model: x\nprofiles: 3\n"), c),
        r"'profiles' must be a mapping"),
    Row("card-file-missing", lambda c: train_card(c.tmp / "nope.yaml", c), r"card file not found: .*nope\.yaml"),
    Row("card-unknown-method", lambda c: ["train", "teachr", "-d", "deliver-synth"],
        r"unknown method 'teachr'; did you mean teacher"),
    Row("card-unknown-profile", lambda c: ["train", c.art.card, "-d", "deliver-synth", "-p", "fast"],
        r"unknown profile 'fast'"),
    Row("card-unknown-loss", lambda c: train_card(card_file(c, losses={"ohem_ce": 1.0, "focal": 1.0}), c),
        r"unknown loss 'focal'"),
    Row("card-unknown-model", lambda c: train_card(card_file(c, model="segformer_mit_b9"), c),
        r"unknown model 'segformer_mit_b9'"),
    Row("card-teacher-with-kd", lambda c: train_card(card_file(c, losses={"ohem_ce": 1.0, "kd": 1.0}), c),
        r"losses \['kd'\] need a teacher"),
    Row("protocol-unknown", lambda c: ["eval", "--checkpoint", c.art.ckpt, "--protocol", "emmm"],
        r"unknown protocol 'emmm'"),
    Row("protocol-card-unknown-key",
        lambda c: ["eval", "--checkpoint", c.art.ckpt, "--protocol",
                   card_file(c, "p.yaml", text="kind: subsets\nfill: zero\nsed: 3\n")],
        r"p\.yaml: unknown key 'sed'"),
    Row("protocol-card-invalid-yaml",
        lambda c: ["eval", "--checkpoint", c.art.ckpt, "--protocol", card_file(c, "p.yaml", text="kind: [\n")],
        r"p\.yaml: not valid YAML"),
    # ---- checkpoints
    Row("ckpt-missing", lambda c: ["eval", "--checkpoint", c.tmp / "nope.pt"], r"checkpoint not found: .*nope\.pt"),
    Row("ckpt-truncated", lambda c: ["eval", "--checkpoint", bad_ckpt(_truncated)(c)],
        r"bad\.pt: not a readable rsbench checkpoint"),
    Row("ckpt-zero-byte", lambda c: ["eval", "--checkpoint", bad_ckpt(lambda c, p: p.write_bytes(b""))(c)],
        r"bad\.pt: not a readable rsbench checkpoint"),
    Row("ckpt-not-rsbench", lambda c: ["eval", "--checkpoint", bad_ckpt(_not_rsbench)(c)],
        r"bad\.pt: not an rsbench checkpoint"),
    Row("ckpt-other-dataset", lambda c: ["eval", "--checkpoint", c.art.ckpt_muses, "-d", "deliver-synth"],
        r"(trained on muses-synth .* deliver-synth|deliver: bad modalities \['frame', 'event', 'lidar'\])"),
    Row("ckpt-other-modalities", lambda c: ["eval", "--checkpoint", c.art.ckpt, "-d", "muses-synth"],
        r"(trained on deliver-synth .* muses-synth|muses: bad modalities \['rgb', 'depth', 'event', 'lidar'\])"),
    Row("teacher-other-dataset", student_with(lambda c: c.art.ckpt_muses),
        r"teacher .* was trained on muses-synth \(frame,event,lidar; 19 classes\); this student trains on deliver"),
    Row("teacher-other-modality-set", student_with(lambda c: c.art.ckpt_rgbd),
        r"was trained on deliver-synth \(rgb,depth; 25 classes\); this student trains on deliver-synth \(rgb,depth,"),
    Row("teacher-truncated", student_with(bad_ckpt(_truncated)), r"not a readable rsbench checkpoint"),
    Row("ckpt-code-in-pickle", lambda c: ["eval", "--checkpoint", bad_ckpt(_evil)(c)],
        r"bad\.pt: refused to load: .*weights-only"),
    Row("teacher-code-in-pickle", student_with(bad_ckpt(_evil)), r"bad\.pt: refused to load: .*weights-only"),
    Row("resume-code-in-pickle",
        lambda c: (_evil(c, (c.tmp / "out").mkdir() or c.tmp / "out" / "last.pt"), train_opts("--resume")(c))[1],
        r"out/last\.pt: refused to load: .*weights-only"),
    Row("card-pretrained-code-in-pickle",
        lambda c: train_card(card_file(c, pretrained=str(bad_ckpt(_evil)(c))), c),
        r"bad\.pt: refused to load: .*weights-only"),
    Row("resume-other-modality-set",
        lambda c: (shutil.copytree(c.art.ckpt_rgbd.parent, c.tmp / "out"), train_opts("--resume")(c))[1],
        r"cannot resume .*out/last\.pt"),
    Row("weights-code-in-pickle",
        lambda c: ["eval", "--weights", bad_ckpt(_evil)(c), "--model", "segformer_mit_test", "-d", "deliver",
                   "--root", c.art.data["deliver"]],
        r"bad\.pt: refused to load: .*weights-only"),
    Row("ckpt-code-in-pickle-subprocess", lambda c: ["eval", "--checkpoint", bad_ckpt(_evil)(c)],
        r"bad\.pt: refused to load: .*weights-only", via="subprocess"),
    Row("weights-other-model",
        lambda c: ["eval", "--weights", c.art.ckpt, "--model", "segformer_mit_b0", "-d", "deliver",
                   "--root", c.art.data["deliver"], "--embed-dim", "16"],
        r"does not fit"),
    Row("resume-other-card",
        lambda c: (shutil.copytree(c.art.ckpt.parent, c.tmp / "out"),
                   train_card(c.art.card, c, "--resume", "--lr", "0.5"))[1],
        r"cannot resume .*(another card|settings differ \(lr: 0\.001 in the checkpoint, 0\.5 now\))"),
    Row("resume-nothing", train_opts("--resume"), r"checkpoint not found: .*out/last\.pt"),
    Row("out-holds-a-run",
        lambda c: (shutil.copytree(c.art.ckpt.parent, c.tmp / "out"), train_card(c.art.card, c))[1],
        r"last\.pt exists: pass --resume"),
    # ---- command-line options
    Row("iters-zero", train_opts("--iters", "0"), r"--iters must be .*(positive|>= ?1)"),
    Row("nproc-zero", train_opts("--nproc", "0"), r"--nproc must be .*(positive|>= ?1)"),
    Row("student-without-teacher-card-nproc", lambda c: train_card(
        card_file(c, stage="student", modality_dropout=True, losses={"ohem_ce": 1.0, "kd": 1.0}), c, "--nproc", "2"),
        r"names no teacher card: pass --teacher PATH"),  # refused before torchrun starts: one line, not one per rank
    Row("card-loss-unknown-option", lambda c: train_card(card_file(c, losses={"ohem_ce": {"weight": 1.0,
                                                                                          "tresh": 0.5}}), c),
        r"loss 'ohem_ce' has no option 'tresh' \(did you mean 'thresh'\?\)"),
    Row("card-flat-loss-key", lambda c: train_card(card_file(c, ohem_thresh=0.5), c),
        r"card key 'ohem_thresh' is now an option of its loss: losses: \{ohem_ce: \{weight: W, thresh: 0.5\}\}"),
    Row("iters-negative", train_opts("--iters", "-3"), r"--iters must be .*(positive|>= ?1)"),
    Row("lr-nan", train_opts("--lr", "nan"), r"--lr must be a finite number > 0, got nan"),
    Row("lr-negative", train_opts("--lr", "-1"), r"--lr must be a finite number > 0, got -1"),
    Row("lr-inf", train_opts("--lr", "inf"), r"--lr must be a finite number > 0, got inf"),
    Row("batch-size-zero", train_opts("--batch-size", "0"), r"--batch-size must be"),
    Row("stop-after-zero", train_opts("--stop-after", "0"), r"--stop-after must be a positive integer"),
    Row("threads-zero", train_opts("--threads", "0"), r"--threads must be a positive integer"),
    Row("device-unknown", train_opts("--device", "gpu"), r"unknown --device 'gpu' \(choose auto, cpu, cuda"),
    Row("device-cuda-missing", train_opts("--device", "cuda"), r"--device cuda: CUDA is not available",
        marks=(pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA"),)),
    Row("modalities-empty", train_opts("--modalities", ","), r"--modalities is empty"),
    Row("modalities-empty-string", train_opts("--modalities", ""), r"--modalities is empty: name at least one of rgb"),
    Row("modalities-twice", train_opts("--modalities", "rgb,rgb"), r"names a modality twice"),
    Row("train-truncated-train-file",
        lambda c: ["train", c.art.card, "-d", "deliver", "--root", _truncate_first_train_png(data_copy(c)), "-p",
                   "quick", "--out", c.tmp / "out"],
        r"unreadable or truncated image: .*/train/.*lidar_front\.png .*before any compute"),
    Row("modalities-unknown", train_opts("--modalities", "rgb,sonar"),
        r"bad modalities \['rgb', 'sonar'\] \(choose from rgb, depth, event, lidar"),
    Row("stage-unknown", train_opts("--stage", "both"), r"--stage must be teacher or student"),
    Row("out-unwritable",
        lambda c: (c.tmp.joinpath("file").write_text("x"),
                   ["train", c.art.card, "-d", "deliver-synth", "-p", "quick", "--out", c.tmp / "file" / "run"])[1],
        r"--out .*file/run cannot be created: .*file is not a folder"),
    Row("teacher-run-unwritable",
        lambda c: (c.tmp.joinpath("runs").write_text("x"), train_card(c.art.student, c)[:-2])[1],
        r"teacher run folder runs/deliver-synth/.* cannot be created: runs is not a folder"),
    Row("eval-unknown-split", lambda c: ["eval", "--checkpoint", c.art.ckpt, "--split", "dev"],
        r"unknown split 'dev'"),
    Row("eval-unknown-fill", lambda c: ["eval", "--checkpoint", c.art.ckpt, "--fill", "mean"], r"unknown fill 'mean'"),
    Row("eval-unknown-convention", lambda c: ["eval", "--checkpoint", c.art.ckpt, "--convention", "mean"],
        r"convention"),
    Row("eval-batch-size-zero", lambda c: ["eval", "--checkpoint", c.art.ckpt, "--batch-size", "0"],
        r"--batch-size must be"),
    Row("eval-device-unknown", lambda c: ["eval", "--checkpoint", c.art.ckpt, "--device", "gpu"],
        r"unknown --device 'gpu'"),
    Row("eval-threads-zero", lambda c: ["eval", "--checkpoint", c.art.ckpt, "--threads", "0"],
        r"--threads must be a positive integer"),
    Row("eval-out-unwritable",
        lambda c: (c.tmp.joinpath("file").write_text("x"),
                   ["eval", "--checkpoint", c.art.ckpt, "--out", c.tmp / "file" / "emm.json"])[1],
        r"--out .*emm\.json cannot be created: .*file is not a folder"),
    Row("eval-out-is-a-folder", lambda c: ["eval", "--checkpoint", c.art.ckpt, "--out", c.tmp],
        r"--out .* is a folder; give a file name"),
    Row("eval-plot-unwritable",
        lambda c: (c.tmp.joinpath("file").write_text("x"),
                   ["eval", "--checkpoint", c.art.ckpt, "--out", c.tmp / "r.json", "--plot", c.tmp / "file" / "p"])[1],
        r"--plot .*file/p cannot be created"),
    Row("eval-weights-missing",
        lambda c: ["eval", "--weights", c.tmp / "nope.pt", "--model", "segformer_mit_test", "-d", "deliver-synth"],
        r"weights not found: .*nope\.pt"),
    Row("demo-iters-zero", lambda c: ["demo", "--iters", "0", "--out", c.tmp / "demo"], r"--iters must be a positive"),
    Row("demo-out-unwritable",
        lambda c: (c.tmp.joinpath("file").write_text("x"), ["demo", "--out", c.tmp / "file" / "demo"])[1],
        r"--out .*file/demo cannot be created"),
    Row("demo-real-dataset", lambda c: ["demo", "-d", "deliver", "--out", c.tmp / "demo"],
        r"the demo runs on generated data"),
    # ---- click's own usage errors: the same one line, exit 2
    Row("usage-no-such-command", lambda c: ["trian"], r"No such command 'trian'\. Did you mean 'train'\?"),
    Row("usage-missing-argument", lambda c: ["train"], r"^rsbench: error: train: Missing argument 'method'"),
    Row("usage-missing-option", lambda c: ["data", "check"], r"data check: Missing option '--dataset'"),
    Row("usage-not-an-integer", train_opts("--iters", "many"), r"Invalid value for '--iters'.* \(see rsbench train"),
    Row("usage-no-such-option", lambda c: ["eval", "--bogus"], r"eval: No such option: --bogus"),
    Row("usage-no-such-command-subprocess", lambda c: ["data", "synthesize"], r"No such command 'synthesize'",
        via="subprocess"),
    Row("eval-checkpoint-and-weights", lambda c: ["eval", "--checkpoint", c.art.ckpt, "--weights", c.art.ckpt],
        r"give exactly one of --checkpoint"),
    Row("eval-record-exists", lambda c: ["eval", "--checkpoint", c.art.ckpt, "--out", c.art.record],
        r"records are never rewritten"),
    # ---- records
    Row("compare-missing-field", lambda c: ["compare", record_copy(c, _drop("summary"))],
        r"emm\.json: field 'summary' is missing"),
    Row("compare-wrong-type", lambda c: ["compare", record_copy(c, _set("num_samples", "4"))],
        r"emm\.json: field 'num_samples' has type str"),
    Row("compare-truncated-json", lambda c: ["compare", _truncated_json(c)], r"unreadable record .*emm\.json"),
    Row("compare-missing-npz", lambda c: ["compare", record_copy(c, npz=False)], r"emm\.npz"),
    Row("compare-garbage-npz",
        lambda c: (p := record_copy(c), p.with_suffix(".npz").write_bytes(b"PK\x03\x04 not a zip"), ["compare", p])[-1],
        r"emm\.npz"),
    Row("compare-npz-holds-a-pickle", lambda c: ["compare", _evil_npz(c)],
        r"emm\.npz: unreadable per-image counts of emm\.json \(holds Python objects, refused"),
    Row("compare-no-such-path", lambda c: ["compare", c.tmp / "nope.json"], r"no record or folder at .*nope\.json"),
    Row("compare-folder-with-truncated-record",
        lambda c: ["compare", folder_with(c, "emm-2.json", c.art.record.read_text()[:300])],
        r"unreadable record .*emm-2\.json"),
    Row("compare-folder-with-invalid-record",
        lambda c: ["compare", folder_with(c, "emm-2.json", json.dumps({"schema": 2, "kind": "evaluation"}))],
        r"emm-2\.json: field 'method' is missing"),
    Row("leaderboard-build-with-broken-record",
        lambda c: ["leaderboard", "build", "--root", store_with(c, c.art.record.read_text()[:-40])],
        r"unreadable record .*broken\.json"),
    Row("leaderboard-check-with-broken-record",
        lambda c: ["leaderboard", "check", "--root", store_with(c, '{"schema": 2}')],
        r"broken\.json: field 'kind' is missing"),
    Row("leaderboard-check-edited-table", lambda c: ["leaderboard", "check", "--root", edited_table(c)],
        r"deliver-synth\.md differs from what the records generate", code=1),
    Row("leaderboard-add-missing-field",
        lambda c: ["leaderboard", "add", record_copy(c, _drop("dataset")), "--root", c.tmp / "lb"],
        r"emm\.json: field 'dataset' is missing"),
    Row("leaderboard-add-missing-npz",
        lambda c: ["leaderboard", "add", record_copy(c, npz=False), "--root", c.tmp / "lb"], r"emm\.npz"),
    Row("leaderboard-add-summary-not-number",
        lambda c: ["leaderboard", "add", record_copy(c, lambda r: r["summary"].__setitem__("avg", "high")),
                   "--root", c.tmp / "lb"],
        r"field 'summary\.avg' is not a number"),
    Row("plot-truncated-json", lambda c: ["plot", _truncated_json(c), "--out", c.tmp / "plots"],
        r"unreadable record"),
    Row("plot-wrong-type", lambda c: ["plot", record_copy(c, _set("conditions", [])), "--out", c.tmp / "plots"],
        r"field 'conditions' has type list"),
    Row("plot-not-a-record", lambda c: ["plot", record_copy(c, text="[1, 2]"), "--out", c.tmp / "plots"],
        r"a record must be a JSON object", via="subprocess"),
    # ---- the field's models and released checkpoints
    Row("weights-unknown-released", lambda c: weights_eval(c, "--released", "cmnext_b2_deliverr_rgbdel"),
        r"unknown released checkpoint 'cmnext_b2_deliverr_rgbdel'; did you mean cmnext_b2_deliver_rgbdel"),
    Row("weights-released-other-dataset", lambda c: weights_eval(c, "--released", "cmnext_b2_mcubes_rgbadn"),
        r"released checkpoint cmnext_b2_mcubes_rgbadn is for mcubes, not deliver"),
    Row("weights-released-other-model",
        lambda c: weights_eval(c, "--released", "cmnext_b2_deliver_rgbdel", "--model", "segformer_mit_b2"),
        r"is read by --model cmnext_mit_b2, not segformer_mit_b2"),
    Row("weights-no-model", lambda c: weights_eval(c), r"--weights needs --model .* or --released NAME"),
    Row("weights-cmnext-fill-drop", lambda c: weights_eval(c, "--model", "cmnext_mit_test", "--protocol", "emm-drop"),
        r"model cmnext_mit_test supports fill zero only; protocol emm-drop asks for fill 'drop'"),
    Row("weights-cmnext-fill-option", lambda c: weights_eval(c, "--model", "cmnext_mit_test", "--fill", "drop"),
        r"model cmnext_mit_test supports fill zero only; protocol full asks for fill 'drop'"),
    Row("weights-modality-count",
        lambda c: weights_eval(c, "--model", "cmnext_mit_test", "--modalities", "rgb,depth,event"),
        r"holds weights for 4 modalities; deliver gives 3 \(rgb, depth, event\)"),
    Row("weights-class-count", lambda c: weights_eval(c, "--model", "cmnext_mit_test", weights=CMNEXT_5_CLASSES),
        r"predicts 5 classes; deliver has 25"),
    Row("weights-cmnext-into-segformer", lambda c: weights_eval(c, "--model", "segformer_mit_test"),
        r"score it with a cmnext_mit_\* model"),
    Row("weights-unknown-modality", lambda c: weights_eval(c, "--model", "cmnext_mit_test", "--modalities", "rgb,nir"),
        r"modalities \['nir'\] are not deliver's"),
    Row("weights-bad-eval-resize",
        lambda c: weights_eval(c, "--model", "cmnext_mit_test", "--eval-size", "32", "--eval-resize", "cubic"),
        r"--eval-resize must be one of antialias, bilinear, float"),
    Row("ckpt-with-weights-options", lambda c: ["eval", "--checkpoint", c.art.ckpt, "--model", "cmnext_mit_b2"],
        r"--model, --released, --modalities, --embed-dim and --eval-resize go with --weights"),
    Row("train-unknown-model", train_opts("--model", "cmnext_mit_b9"), r"unknown model 'cmnext_mit_b9'"),
    Row("train-cmnext-fill-drop", train_opts("--model", "cmnext_mit_test", "--fill", "drop"),
        r"model cmnext_mit_test supports fill zero only; card tiny asks for fill 'drop'.*--fill zero"),
    Row("train-cmnext-features",
        lambda c: train_card(card_file(c, stage="student", teacher="teacher", fill="zero",
                                       losses={"ohem_ce": 1.0, "rrm": 1.0}), c, "--model", "cmnext_mit_test",
                             "--teacher", c.art.ckpt),
        r"losses rrm need per-stage per-modality features, which model cmnext_mit_test does not have"),
    Row("card-unknown-model-option", lambda c: train_card(card_file(c, model_options={"colour": "red"}), c),
        r"model segformer_mit_test has no option 'colour'"),
    # ---- comparisons that cannot mislead: values, .npz against JSON, one evaluation once, one training, seeds
    Row("compare-nan-summary", lambda c: ["compare", record_copy(c, lambda r: r["summary"].update(avg=float("nan")))],
        r"emm\.json: field 'summary\.avg' is nan, not a finite number"),
    Row("compare-infinite-condition-number",
        lambda c: ["compare", record_copy(c, lambda r: next(iter(r["conditions"].values())).update(pixel_acc=1e999))],
        r"emm\.json: field 'conditions\.[a-z+]+\.pixel_acc' is inf, not a finite number"),
    Row("compare-negative-samples", lambda c: ["compare", record_copy(c, _set("num_samples", -2))],
        r"emm\.json: field 'num_samples' is -2; a count must be at least 1"),
    Row("compare-negative-world-size",
        lambda c: ["compare", record_copy(c, lambda r: r["provenance"].update(world_size=-1))],
        r"emm\.json: field 'provenance\.world_size' is -1; a count must be at least 1"),
    Row("compare-short-per-class-list",
        lambda c: ["compare", record_copy(c, lambda r: next(iter(r["conditions"].values()))["per_class_iou"].pop())],
        r"emm\.json: field 'conditions\.[a-z+]+\.per_class_iou' has \d+ entries for \d+ classes"),
    Row("compare-npz-other-totals",
        lambda c: ["compare", (p := record_copy(c), z := dict(np.load(p.with_suffix(".npz"))), np.savez(
            p.with_suffix(".npz"), **{k: v + 1 if k.startswith("union_") else v for k, v in z.items()}), p)[-1]],
        r"emm\.json: its per-image counts emm\.npz are not the record's: condition [a-z+]+(, class \d+)?: their "
        r"totals give"),
    Row("compare-npz-fewer-samples",
        lambda c: ["compare", (p := record_copy(c), z := dict(np.load(p.with_suffix(".npz"))), np.savez(
            p.with_suffix(".npz"), **{k: v if k == "condition_keys" else v[:1] for k, v in z.items()}), p)[-1]],
        r"emm\.json: its per-image counts emm\.npz hold 1 samples; the record has \d+"),
    Row("compare-npz-fewer-classes",
        lambda c: ["compare", (p := record_copy(c), z := dict(np.load(p.with_suffix(".npz"))), np.savez(
            p.with_suffix(".npz"), **{k: v if k in ("condition_keys", "sample_index") else v[:, :-1]
                                      for k, v in z.items()}), p)[-1]],
        r"emm\.json: its per-image counts emm\.npz: condition [a-z+]+ counts \d+ classes; the record has \d+"),
    Row("compare-npz-other-conditions",
        lambda c: ["compare", (p := record_copy(c), z := dict(np.load(p.with_suffix(".npz"))), np.savez(
            p.with_suffix(".npz"), **{**z, "condition_keys": np.array(["rgb+nir", *z["condition_keys"][1:]])}), p)[-1]],
        r"emm\.json: its per-image counts emm\.npz hold conditions rgb\+nir, .*; the record has"),
    Row("compare-seed-twice-two-checkpoints",
        lambda c: ["compare", (p := record_copy(c), q := p.with_name("emm-b.json"),
                               shutil.copyfile(p.with_suffix(".npz"), q.with_suffix(".npz")),
                               q.write_text(json.dumps({**json.loads(p.read_text()), "checkpoint_sha256": "b" * 64,
                                                        "per_image": "emm-b.npz"})), p.parent)[-1]],
        r"records of method 'tiny' under protocol 'emm' both have seed 0: .*emm-b\.json \(checkpoint bbbbbbbb, "
        r"protocol digest \w+\) and .*emm\.json \(checkpoint \w+, .*\); seeds must be distinct; pass --force"),
    Row("compare-different-training",
        lambda c: ["compare", (p := record_copy(c), q := p.with_name("emm-b.json"), r := json.loads(p.read_text()),
                               shutil.copyfile(p.with_suffix(".npz"), q.with_suffix(".npz")),
                               q.write_text(json.dumps({**r, "checkpoint_sha256": "b" * 64, "per_image": "emm-b.npz",
                                                        "provenance": {**r["provenance"], "seed": 1,
                                                                       "trained_iters": 200}})), p.parent)[-1]],
        r"records of method 'tiny' come from different training: .*emm-b\.json \(card digest \w+, 200 iterations\) "
        r"and .*emm\.json \(card digest \w+, \d+ iterations\); pass --force to pool them"),
    Row("leaderboard-add-different-training",
        lambda c: (shutil.copytree(c.art.record.parent, c.tmp / "lb" / "records" / "deliver-synth" / "tiny"),
                   ["leaderboard", "add", record_copy(c, lambda r: (
                       r.update(checkpoint_sha256="b" * 64), r["provenance"].update(trained_iters=200, seed=1))),
                    "--root", c.tmp / "lb"])[-1],
        r"records of method 'tiny' come from different training: .*\(card digest \w+, \d+ iterations\) and "
        r".*emm\.json \(card digest \w+, 200 iterations\); the store pools a method's records as seeds"),
    Row("leaderboard-add-npz-of-other-totals",
        lambda c: ["leaderboard", "add", (p := record_copy(c), z := dict(np.load(p.with_suffix(".npz"))), np.savez(
            p.with_suffix(".npz"), **{k: v + 1 if k.startswith("union_") else v for k, v in z.items()}), p)[-1],
                   "--root", c.tmp / "lb"],
        r"emm\.json: its per-image counts emm\.npz are not the record's"),
    Row("leaderboard-build-reported-nan",
        lambda c: (r := c.tmp / "lb", r.mkdir(), (r / "reported.yaml").write_text(
            (Path(__file__).parents[1] / "leaderboards" / "reported.yaml").read_text().replace(
                "emm: 37.90", "emm: .nan")), ["leaderboard", "build", "--root", r])[-1],
        r"lb/reported\.yaml: entry 0 \(CMNeXt, deliver\): field 'values\.emm' is nan, not a finite number"),
    Row("leaderboard-build-reported-text-value",
        lambda c: (r := c.tmp / "lb", r.mkdir(), (r / "reported.yaml").write_text(
            (Path(__file__).parents[1] / "leaderboards" / "reported.yaml").read_text().replace(
                "emm: 19.30", 'emm: "19.30"')), ["leaderboard", "build", "--root", r])[-1],
        r"lb/reported\.yaml: entry 5 \(CMX, muses\): field 'values\.emm' is '19\.30', not a finite number"),
    Row("leaderboard-check-reported-unknown-released",
        lambda c: (r := c.tmp / "lb", r.mkdir(), (r / "reported.yaml").write_text(
            (Path(__file__).parents[1] / "leaderboards" / "reported.yaml").read_text().replace(
                "released: cmnext_b2_deliver_rgbdel", "released: cmnext_b2_delivr_rgbdel")),
                   ["leaderboard", "check", "--root", r])[-1],
        r"lb/reported\.yaml: entry 0 \(CMNeXt, deliver\): field 'released' is 'cmnext_b2_delivr_rgbdel', not a "
        r"released checkpoint"),
    Row("leaderboard-build-reported-derived-key",
        lambda c: (r := c.tmp / "lb", r.mkdir(), (r / "reported.yaml").write_text(
            (Path(__file__).parents[1] / "leaderboards" / "reported.yaml").read_text().replace(
                'keys: ["emm:missing-0"', 'keys: ["emm:missing-9"')), ["leaderboard", "build", "--root", r])[-1],
        r"lb/reported\.yaml: entry 0 \(CMNeXt, deliver\): field 'derived\.keys' names emm:missing-9, not among"),
]


# -------------------------------------------------------------------------------------------------- check
def snapshot(roots: Sequence[Path]) -> dict[str, str]:
    """Every file (content hash) and folder under ``roots``."""
    out = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            out[str(p)] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def invoke(args: list[str], via: str, cwd: Path) -> tuple[int, str, BaseException | None]:
    """(exit code, stderr, an exception other than SystemExit) of one CLI call."""
    if via == "subprocess":
        import rsbench

        # the same rsbench as this process, whatever the working folder
        path = os.pathsep.join([str(Path(rsbench.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
        proc = subprocess.run([sys.executable, "-m", "rsbench", *args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=300)
        return proc.returncode, proc.stderr, None
    result = runner.invoke(app, args)
    exc = None if result.exception is None or isinstance(result.exception, SystemExit) else result.exception
    return result.exit_code, result.stderr, exc


def test_catalogue_is_large_and_ids_unique() -> None:
    ids = [r.id for r in ROWS]
    assert len(ids) >= 30 and len(set(ids)) == len(ids)


@pytest.mark.parametrize("row", [pytest.param(r, id=r.id, marks=r.marks) for r in ROWS])
def test_bad_input(row: Row, art: Artefacts, tmp_path: Path, synth_cache: Path,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = Ctx(tmp_path / "work", art)
    ctx.tmp.mkdir()
    args = [str(a) for a in row.setup(ctx)]
    monkeypatch.chdir(ctx.tmp)
    roots = [ctx.tmp, art.root, synth_cache]
    before = snapshot(roots)
    code, stderr, exc = invoke(args, row.via, ctx.tmp)
    after = snapshot(roots)

    assert exc is None, f"{type(exc).__name__}: {exc}"
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("rsbench: error: "), stderr
    assert re.search(row.expect, lines[0]), lines[0]
    assert code == row.code, lines[0]
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"written on bad input: {len(changed)} paths, {changed[:8]}"
    assert not ctx.marker.exists(), "code from a checkpoint ran"


def test_the_malicious_checkpoint_would_run_code(tmp_path: Path) -> None:
    """The pickle rows are meaningful: loading this file without weights_only creates the marker."""
    ctx = Ctx(tmp_path, None)  # type: ignore[arg-type]
    path = tmp_path / "evil.pt"
    torch.save({"model": Evil(ctx.marker), "card": {}}, path)
    assert not ctx.marker.exists()
    torch.load(path, weights_only=False)
    assert ctx.marker.exists()


def test_the_record_copies_are_valid_unchanged(art: Artefacts, tmp_path: Path) -> None:
    """The record rows fail for the change they make: an unchanged copy is accepted by compare."""
    ctx = Ctx(tmp_path, art)
    result = runner.invoke(app, ["compare", str(record_copy(ctx)), "--format", "csv"])
    assert result.exit_code == 0, result.output


def test_a_folder_s_other_json_files_are_skipped(art: Artefacts, tmp_path: Path) -> None:
    """Only broken records are errors: JSON that is not meant as a record (no schema) is left alone."""
    folder = folder_with(Ctx(tmp_path, art), "settings.json", json.dumps({"lr": 0.1}))
    result = runner.invoke(app, ["compare", str(folder), "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert "tiny" in result.stdout


@pytest.mark.parametrize("base", ["deliver", "muses", "mcubes"])
def test_the_data_copies_are_valid_unchanged(base: str, art: Artefacts, tmp_path: Path) -> None:
    """The data rows fail for the change they make: an unchanged copy is scored."""
    ctx = Ctx(tmp_path, art)
    args = [*eval_on(data_copy(ctx, base), ctx, base), "--out", tmp_path / "r.json"]
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r.json").read_text())["dataset"] == base
