"""Per-sensor corruptions: identity at severity 0, damage that grows with severity (measured), seeding."""

from __future__ import annotations

import pytest
import torch

from rsbench.corruptions import SENSOR_OF, all_corruptions, corrupt, corruptions_for, severity_table
from rsbench.data import create_dataset
from rsbench.errors import ConfigError
from rsbench.protocols import conditions, load_protocol
from tests.conftest import TINY_SYNTH

DATASETS = ("deliver-synth", "muses-synth", "mcubes-synth")


def _samples():
    """Real generated inputs of every modality of the three look-alikes (normalised as the loaders give them)."""
    out = {}
    for name in DATASETS:
        ds = create_dataset(name, split="val", synth=TINY_SYNTH)
        batch = [ds[i]["modalities"] for i in range(2)]
        for m in ds.modalities:
            out.setdefault(m, torch.stack([b[m] for b in batch]))
    return out


SAMPLES = None


def samples():
    global SAMPLES
    if SAMPLES is None:
        SAMPLES = _samples()
    return SAMPLES


def _damage(modality: str, name: str, severity: int) -> float:
    """Mean absolute change; for a displacement, of 9x9 box-blurred frames (a thin edge moved by 1 px and by
    8 px differs equally pixel by pixel, but not after blurring at the scale of the displacement)."""
    x = samples()[modality]
    y = corrupt(x, [0, 1], modality, name, severity, lambda i: 1000 + i)
    if name == "event_time_shift":
        x, y = (torch.nn.functional.avg_pool2d(t, 9, stride=1, padding=4) for t in (x, y))
    return (y - x).abs().mean().item()


CASES = [(m, c) for m in SENSOR_OF if m != "frame" for c in corruptions_for(m)]


@pytest.mark.parametrize(("modality", "name"), CASES)
def test_severity_zero_is_the_identity_and_damage_grows(modality: str, name: str) -> None:
    if modality not in samples():
        pytest.fail(f"no generated sample for {modality}")
    x = samples()[modality]
    assert torch.equal(corrupt(x, [0, 1], modality, name, 0, lambda i: i), x)
    damage = [_damage(modality, name, s) for s in range(1, 6)]
    assert damage[0] > 0, damage
    if SENSOR_OF[modality] == "rgb":  # ImageNet-C's tables are not strictly monotone for every image
        assert damage[4] > damage[0], damage
    else:
        assert all(b >= a * 0.98 for a, b in zip(damage, damage[1:], strict=False)), damage
        assert damage[4] > 1.5 * damage[0], damage


def test_draws_follow_the_sample_not_the_batch() -> None:
    x = samples()["lidar"]
    both = corrupt(x, [5, 6], "lidar", "lidar_sparsify", 3, lambda i: 77 + i)
    one = corrupt(x[1:], [6], "lidar", "lidar_sparsify", 3, lambda i: 77 + i)
    assert torch.equal(both[1:], one)


def test_tables_are_data_and_names_checked() -> None:
    table = severity_table()
    own = [c for c in all_corruptions() if c in table]
    assert own and all(len(table[c]) == 5 for c in own)
    with pytest.raises(ConfigError, match="does not apply"):
        corrupt(samples()["depth"], [0, 1], "depth", "fog", 1, lambda i: i)
    with pytest.raises(ConfigError, match="severity"):
        corrupt(samples()["depth"], [0, 1], "depth", "depth_holes", 6, lambda i: i)


def test_corruptions_protocol_conditions_one_modality_at_a_time(tmp_path) -> None:
    card = load_protocol("corruptions")
    conds = conditions(card, ("rgb", "depth", "event", "lidar"))
    assert len(conds) == 1 + (15 + 3 + 3 + 3) * 5
    assert all(len(c.changes) == 1 for c in conds[1:]) and conds[0].key == "full"
    path = tmp_path / "c.yaml"
    path.write_text("kind: corruptions\nseverities: [0, 6]\n")
    with pytest.raises(ConfigError, match="severities"):
        load_protocol(str(path))
    path.write_text("kind: corruptions\ncorruptions: [lens_flare]\n")
    with pytest.raises(ConfigError, match="unknown corruptions"):
        load_protocol(str(path))
