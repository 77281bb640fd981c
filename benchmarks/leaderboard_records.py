"""Produce the committed leaderboard records: quick-profile runs under every protocol card.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/leaderboard_records.py WORK_DIR [--datasets deliver-synth ...]
        [--methods teacher moddrop ...] [--seeds 0 1 2] [--jobs 2] [--root leaderboards]

Runs live in ``WORK_DIR/runs/<dataset>/<method>-s<seed>/`` (the layout of ``seeded_study.py``, whose
finished runs are reused: same card and data). A finished run or record is skipped, so the script
resumes. Each checkpoint is scored under every shipped protocol card into
``WORK_DIR/records/<dataset>/<method>-s<seed>/<protocol>.json``, then ``rsbench leaderboard add`` copies
the records into the store and ``rsbench leaderboard build`` regenerates the tables.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from seeded_study import finished
from seeded_study import run as call

RSBENCH = [sys.executable, "-m", "rsbench"]
METHODS = ("teacher", "moddrop", "kd", "robustseg", "robustseg-paper", "robustseg-zero", "robustseg-no-hpdm",
           "robustseg-no-rrm")


def job(work: Path, ds: str, method: str, seed: int) -> None:
    runs = work / "runs" / ds
    out = runs / f"{method}-s{seed}"
    if not finished(out):
        extra = [] if method == "teacher" else ["--stage", "student", "--teacher", str(runs / f"teacher-s{seed}" /
                                                                                    "last.pt")]
        resume = ["--resume"] if (out / "last.pt").is_file() else []
        call([*RSBENCH, "train", method, "-d", ds, "-p", "quick", "--seed", str(seed), "--out", str(out), *extra,
              *resume], runs / f"{out.name}.log")
    from rsbench.protocols import builtin_protocols

    records = work / "records" / ds / out.name
    todo = [p for p in builtin_protocols() if not (records / f"{p}.json").is_file()]
    for p in todo:  # one protocol per call: a crash loses at most one evaluation
        call([*RSBENCH, "eval", "--checkpoint", str(out / "last.pt"), "--protocol", p, "--out",
              str(records / f"{p}.json")], records.parent / f"{out.name}.log")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", type=Path)
    ap.add_argument("--datasets", nargs="+", default=["deliver-synth", "muses-synth", "mcubes-synth"])
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--root", type=Path, default=Path("leaderboards"))
    args = ap.parse_args()
    work = args.work.resolve()
    with ThreadPoolExecutor(args.jobs) as pool:
        for ds in args.datasets:  # teachers first: every student of a seed needs its teacher
            list(pool.map(lambda s, ds=ds: job(work, ds, "teacher", s), args.seeds))
            students = [(m, s) for s in args.seeds for m in args.methods if m != "teacher"]
            list(pool.map(lambda ms, ds=ds: job(work, ds, *ms), students))
    for ds in args.datasets:
        call([*RSBENCH, "leaderboard", "add", str(work / "records" / ds), "--root", str(args.root)],
             work / "leaderboard.log")
    call([*RSBENCH, "leaderboard", "build", "--root", str(args.root)], work / "leaderboard.log")
    print(f"records added to {args.root}/records; tables rebuilt")


if __name__ == "__main__":
    main()
