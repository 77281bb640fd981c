"""``leaderboards/reported.yaml``: links to the released-checkpoint registry, and the derived EMM group means.

The Liao et al. rows print EMM mIoU-Avg and mIoU-E(p) for p = 0.2, 0.1, 0.05. With 4 modalities each is a
weighted mean of the four group means (the mean mIoU over the 1, 4, 6, 4 subsets with 0, 1, 2, 3 modalities
missing), so the group means follow from the printed numbers; rsbench's own ``expected_miou`` gives the
weights here, so the targets are what rsbench's summaries of a re-scoring would have to produce.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import yaml

from rsbench.evaluation import expected_miou
from rsbench.models.zoo.released import released_checkpoints
from rsbench.protocols.summary import subset_key

ENTRIES = yaml.safe_load((Path(__file__).parents[1] / "leaderboards" / "reported.yaml").read_text())["entries"]
MODS = ("rgb", "depth", "event", "lidar")


def _summary_of_group_means(groups: list[float]) -> list[float]:
    """Avg, E(0.2), E(0.1), E(0.05) of a subset table whose subsets with k missing all score groups[k]."""
    table = {subset_key(s): groups[4 - len(s)] for r in range(1, 5) for s in itertools.combinations(MODS, r)}
    return [float(np.mean(list(table.values())))] + [expected_miou(table, MODS, p) for p in (0.2, 0.1, 0.05)]


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.get("derived")], ids=lambda e: e["model"])
def test_derived_group_means_reproduce_the_printed_emm_numbers(entry):
    values = entry["values"]
    groups = [values[k] for k in entry["derived"]["keys"]]
    printed = [values["emm"], values["emm:e0.2"], values["emm:e0.1"], values["emm:e0.05"]]
    # the linear map from group means to the four printed numbers, column by column
    columns = np.array([_summary_of_group_means(list(np.eye(4)[k])) for k in range(4)]).T
    solved = np.linalg.solve(columns, printed)
    assert np.allclose(solved, groups, atol=0.006), solved
    assert np.allclose(_summary_of_group_means(groups), printed, atol=0.01)


def test_released_links_name_registry_entries_of_the_same_dataset():
    registry = released_checkpoints()
    linked = [e for e in ENTRIES if e.get("released")]
    assert linked
    for e in linked:
        assert e["released"] in registry, e["released"]
        assert registry[e["released"]].dataset == e["dataset"]
        # the target's full-modality mean is the authors' own number for that file, within rounding
        assert abs(e["values"]["emm:missing-0"] - registry[e["released"]].reported_miou) < 0.05
