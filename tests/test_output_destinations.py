"""Every command that writes checks its destination before compute, by a real write (``os.access`` says yes
to root under ``/proc`` and ``/sys``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.test_cli import assert_one_line_error, run

RELEASED = Path(__file__).parent / "released"
PSEUDO = Path("/proc")  # writable by os.access for root, but no file can be created there


@pytest.mark.skipif(not PSEUDO.is_dir(), reason="no /proc on this system")
@pytest.mark.parametrize("args", [
    ["train", "teacher", "-d", "deliver-synth", "-p", "quick", "--out", "/proc/rsbench-run"],
    ["eval", "--weights", str(RELEASED / "cmnext_tiny_deliver25.pth"), "--model", "cmnext_mit_test",
     "-d", "deliver-synth", "--out", "/proc/rsbench.json"],
    ["demo", "--out", "/proc/rsbench-demo"],
    ["data", "synth", "--like", "deliver", "--out", "/proc/rsbench-data"],
    ["plot", str(RELEASED.parent / "released" / "cmnext_keys.json"), "--out", "/proc/rsbench-plots"],
], ids=["train", "eval", "demo", "data-synth", "plot"])
def test_a_folder_no_file_can_be_created_in_is_refused_before_compute(args):
    assert_one_line_error(run(*args), "is not writable (/proc is not writable)")


def test_the_probe_leaves_nothing_behind(tmp_path):
    from rsbench.validate import writable_folder

    writable_folder(tmp_path / "new" / "deeper")
    assert os.listdir(tmp_path) == []
