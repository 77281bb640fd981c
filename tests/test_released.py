"""rsbench's released forms against values the RELEASED RobustSeg code produced.

``tests/released/released_values.json`` was written once by ``tests/released/make_values.py``
(its docstring holds the command), which ran the released ``mmkd`` functions (``RUMD``,
``RUMD_zero_padding_all``, ``PCUMD``, ``PCUMD_zero_padding_random``), the released
``OhemCrossEntropy``, the training script's KD line and the released ``Seg`` model on seeded
inputs. The inputs are rebuilt here from the recorded seeds and shapes (same helper functions);
the released noise and pairing draws are replayed from the recorded seeds in the released loop
order (sample, stage, modality; student before teacher). Nothing of the released code is imported.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from rsbench.losses import hpdm_loss, kd_loss, ohem_cross_entropy, rrm_loss
from tests.released.make_values import SHAPES, features, fill, labels

VALUES = json.loads((Path(__file__).parent / "released" / "released_values.json").read_text())
M = 4


def _case(group: str, name: str) -> dict:
    return next(c for c in VALUES[group] if c["name"] == name)


def _inputs(case: dict):
    """Teacher ``[B, M, ...]`` per stage, the released student slots, and the full-slot student leaf."""
    teacher_list = features(case["teacher_seed"], M, SHAPES)
    index = case["index"]
    base = [[t[index] for t in s] for s in teacher_list]
    student_list = features(case["student_seed"], len(index), SHAPES, base=base, delta=case["delta"])
    teacher = [torch.stack([teacher_list[i][j] for i in range(2)]) for j in range(4)]
    student = []
    for j in range(4):
        full = torch.zeros_like(teacher[j])
        for i in range(2):
            full[i, index] = student_list[i][j]
        student.append(full.requires_grad_(True))
    valid = torch.zeros(M, dtype=torch.bool)
    valid[index] = True
    return teacher, student, valid


def _released_noise(case: dict) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Replay ``randn_like`` on the tiled ``[n*C, H*W]`` rows (row ``c*n + s`` = copy ``s`` of channel ``c``)."""
    n, index = case["n_samples"], case["index"]
    g = torch.Generator().manual_seed(case["noise_seed"])
    per = {}
    for i in range(2):
        for j, (c, h, w) in enumerate(SHAPES):
            for k in range(len(index)):
                pair = []
                for _ in ("student", "teacher"):
                    rows = torch.randn(n * c, h * w, generator=g, dtype=torch.float64)
                    pair.append(rows.view(c, n, h, w).transpose(0, 1))
                per[i, j, index[k]] = pair
    out = []
    for j in range(4):
        keys = [(i, j, m) for i in range(2) for m in range(M) if m in index]  # pair_indices order
        out.append(tuple(torch.stack([per[key][side] for key in keys], dim=1) for side in (0, 1)))
    return out


def _check_grads(case: dict, student: list[torch.Tensor]) -> None:
    index = case["index"]
    for i in range(2):
        for j in range(4):
            got = student[j].grad[i, index].pow(2).sum().item()
            assert got == pytest.approx(case["grad"]["sq_norm"][i][j], rel=1e-5), (i, j)
        expected = torch.tensor(case["grad"]["last_stage"][i], dtype=torch.float64)
        # released prototypes are float32 (``torch.zeros`` default dtype): near-zero entries carry its rounding
        atol = 1e-6 * float(expected.abs().max())
        torch.testing.assert_close(student[3].grad[i, index].flatten(), expected, rtol=1e-5, atol=atol)


@pytest.mark.parametrize("name", ["main-near", "main-far", "main-one", "zero-all"])
def test_rrm_released_form_equals_released_code(name: str) -> None:
    case = _case("rrm", name)
    teacher, student, valid = _inputs(case)
    loss = rrm_loss(student, teacher, "same", case["n_samples"], "height", case["lambda"],
                    noise=_released_noise(case), form="released", noise_std="pixel", slot_present=valid)
    assert loss.item() == pytest.approx(case["value"], rel=1e-5)
    loss.backward()
    _check_grads(case, student)


def _stacked(per_sample):
    return [torch.stack([per_sample[i][j] for i in range(2)]) for j in range(4)]


def _rrm_at(delta: float, form: str, scale: int = 1) -> float:
    t = features(11, M, SHAPES)
    s = features(12, M, SHAPES, base=t, delta=delta)

    def up(x):
        return torch.nn.functional.interpolate(x.flatten(0, 1), scale_factor=scale).unflatten(0, x.shape[:2])

    student, teacher = [up(x) for x in _stacked(s)], [up(x) for x in _stacked(t)]
    g = torch.Generator().manual_seed(0)
    return rrm_loss(student, teacher, "same", 10, "height", 1e-5, generator=g, form=form).item()


def test_released_rrm_grows_with_discrepancy_and_size_logit_grad_barely_moves() -> None:
    """Measured: released 48 -> 338 from delta 0 to 3, x15 per 2x feature size; logit_grad 0.010 -> 0.017."""
    released = [_rrm_at(d, "released") for d in (0.0, 0.3, 1.0, 3.0)]
    logit = [_rrm_at(d, "logit_grad") for d in (0.0, 0.3, 1.0, 3.0)]
    assert released == sorted(released) and released[-1] > 5 * released[0]
    assert max(logit) < 2 * min(logit)
    assert min(r / lg for r, lg in zip(released, logit, strict=True)) > 1e3
    by_size = [_rrm_at(1.0, "released", f) for f in (1, 2)]
    assert 8 < by_size[1] / by_size[0] < 32  # ~ (N2 / N1)^2 = 16: the penalty scales with N^2


@pytest.mark.parametrize("name", ["main", "zero-random"])
def test_hpdm_count_squared_equals_released_code(name: str) -> None:
    case = _case("hpdm", name)
    teacher, student, valid = _inputs(case)
    lab = labels(case["label_seed"], (16, 12), case["num_classes"])
    if name == "main":
        pairing, valid_arg = "same", valid
    else:  # replay the released per-(sample, stage, modality) draws: element k of a fresh random.sample
        random.seed(case["python_random_seed"])
        table = torch.zeros(2, 4, M, dtype=torch.long)
        for i in range(2):
            for j in range(4):
                for k in range(M):
                    table[i, j, k] = random.sample(range(M), M)[k]
        pairing, valid_arg = table, None
    loss = hpdm_loss(student, teacher, lab, case["num_classes"], pairing, "count_squared", slot_present=valid_arg)
    assert loss.item() == pytest.approx(case["value"], rel=1e-5)
    if name == "main":
        loss.backward()
        _check_grads(case, student)


def test_kd_and_ohem_equal_released_code() -> None:
    rec = VALUES["kd_ohem"]
    g = torch.Generator().manual_seed(rec["logits_seed"])
    logits = torch.randn(2, 5, 8, 6, generator=g, dtype=torch.float64) * rec["logits_scale"]
    logits_t = torch.randn(2, 5, 8, 6, generator=g, dtype=torch.float64) * rec["logits_scale"]
    lab = labels(rec["label_seed"], (8, 6), 5)
    assert kd_loss(logits, logits_t).item() == pytest.approx(rec["kd"], rel=1e-5)
    onehot = torch.nn.functional.one_hot(lab.clamp(max=4), 5).permute(0, 3, 1, 2).double()
    assert ohem_cross_entropy(logits.float(), lab).item() == pytest.approx(rec["ohem"]["hard"], rel=1e-5)
    confident = (logits + rec["confident_margin"] * onehot).float()
    assert ohem_cross_entropy(confident, lab).item() == pytest.approx(rec["ohem"]["confident"], rel=1e-5)


# ---------------------------------------------------------------- released checkpoints

DELIVER = ("rgb", "depth", "event", "lidar")  # the released MODALS order: img, depth, event, lidar


def _released_state_dict(prefix: str = "") -> dict[str, torch.Tensor]:
    """A state_dict in the released ``Seg`` key layout (names and shapes recorded from the released model)."""
    rec = VALUES["model"]
    g = torch.Generator().manual_seed(rec["fill_seed"])
    state = {}
    for key, shape in rec["keys"]:
        proto = torch.zeros(shape, dtype=torch.long if key.endswith("num_batches_tracked") else torch.float32)
        state[prefix + key] = fill(key, proto, g)
    return state


def test_released_key_layout_is_the_recorded_one() -> None:
    keys = [k for k, _ in VALUES["model"]["keys"]]
    head = [k for k in keys if not k.startswith("encoder.")]
    assert len(keys) == 193 and len(head) == 17 and head[-1] == "classifier.weight"
    assert "decoder.linear_fuse.bn.running_var" in head and "encoder.block1.0.attn.kv.weight" in keys


@pytest.mark.parametrize("prefix", ["", "module."])
def test_released_checkpoint_gives_the_released_logits(tmp_path: Path, prefix: str) -> None:
    from rsbench.models import create_model, load_pretrained

    path = tmp_path / "Segformer_mit_b0_DELIVER.pth"
    torch.save(_released_state_dict(prefix), path)
    model = create_model("segformer_mit_b0", modalities=DELIVER, num_classes=25, embed_dim=768)
    assert load_pretrained(model, path) == []
    rec = VALUES["model"]
    gi = torch.Generator().manual_seed(rec["input_seed"])
    x = [torch.randn(2, 3, 64, 64, generator=gi) for _ in range(4)]
    with torch.no_grad():
        logits = model.eval()(dict(zip(DELIVER, x, strict=True)))
    assert list(logits.shape) == rec["logits_shape"]
    expected = torch.tensor(rec["logits_every_8"]).view(2, 25, 8, 8)
    scale = float(expected.abs().max())  # ~26: float32 sums in another order (the release loops per sample)
    torch.testing.assert_close(logits[:, :, ::8, ::8], expected, rtol=0, atol=1e-5 * scale)
    assert logits.double().sum().item() == pytest.approx(rec["logits_sum"], rel=1e-5)


def test_cli_scores_a_released_checkpoint_without_a_run_folder(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rsbench.cli import app
    from rsbench.results import read_record
    from tests.fixtures_deliver import write_deliver_sample

    root = tmp_path / "DELIVER"
    for i, cond in enumerate(("cloud", "fog")):
        write_deliver_sample(root, cond, "val", frame=f"00000{i}", size=64, seed=i)
    path = tmp_path / "weights" / "RobustSeg.pth"
    path.parent.mkdir()
    torch.save(_released_state_dict("module."), path)
    out = tmp_path / "rec.json"
    args = ["eval", "--weights", str(path), "--model", "segformer_mit_b0", "--dataset", "deliver", "--root", str(root),
            "--protocol", "emm", "--device", "cpu", "--out", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    record = read_record(out)
    assert record["method"] == "weights:RobustSeg" and len(record["conditions"]) == 15 and record["num_samples"] == 2
    assert record["card"]["model"] == "segformer_mit_b0" and len(record["checkpoint_sha256"]) == 64
    bad = CliRunner().invoke(app, ["eval", "--weights", str(path), "--dataset", "deliver", "--root", str(root)])
    assert bad.exit_code != 0 and "--model" in bad.output
