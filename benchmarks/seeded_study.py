"""Seeded study of the RobustSeg cards and their loss balance on deliver-synth (quick profile).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/seeded_study.py WORK_DIR [--seeds 0 1 2] [--jobs 2]

For each seed: the quick teacher (3600 iterations), then students distilled from that seed's
teacher: ``moddrop``, ``kd``, ``robustseg`` (released main recipe), ``robustseg-paper``,
``robustseg-zero``, and ``robustseg`` with its teacher-term weights set by gradient share:
``kd``, ``hpdm`` and ``rrm`` each at 0.1, 0.3 and 1 times the cross-entropy's encoder gradient
norm, measured (``--log-grad-share``) over the first 50 iterations of a seed-0 ``robustseg`` run
(``WORK_DIR/calibration``). Every student logs its gradient shares. Each run is evaluated under
EMM (zero fill) and EMM-drop on val. A finished run or record is skipped, so the script resumes.
It prints the Markdown tables of the README (mean +- sd over seeds).

Runs are ``rsbench`` CLI calls (``--jobs`` of them at a time, each single-threaded under
``OMP_NUM_THREADS=1``); nothing here trains or scores by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch
import yaml

DATASET = "deliver-synth"
STUDENTS = ("moddrop", "kd", "robustseg", "robustseg-paper", "robustseg-zero")
RATIOS = (0.1, 0.3, 1.0)
TEACHER_TERMS = ("kd", "hpdm", "rrm")
RSBENCH = [sys.executable, "-m", "rsbench"]
_print_lock = threading.Lock()


def say(msg: str) -> None:
    with _print_lock:
        print(msg, flush=True)


def finished(run: Path) -> bool:
    ckpt = run / "last.pt"
    return ckpt.is_file() and bool(torch.load(ckpt, map_location="cpu", weights_only=True).get("complete"))


def run(cmd: list[str], log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed; see {log}")


def train(card: str, out: Path, seed: int, extra: list[str]) -> Path:
    if not finished(out):
        say(f"train {card} seed {seed} -> {out}")
        resume = ["--resume"] if (out / "last.pt").is_file() else []
        run([*RSBENCH, "train", card, "-d", DATASET, "-p", "quick", "--seed", str(seed), "--out", str(out),
             *extra, *resume], out.parent / f"{out.name}.log")
    return out / "last.pt"


def evaluate(out: Path) -> None:
    for fill, name in (("zero", "emm.json"), ("drop", "emm-drop.json")):
        if not (out / name).is_file():
            run([*RSBENCH, "eval", "--checkpoint", str(out / "last.pt"), "--protocol", "all-subsets", "--fill", fill,
                 "--out", str(out / name)], out.parent / f"{out.name}.log")


def first_shares(log: Path, upto: int = 50) -> dict[str, float]:
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    line = next(x for x in lines if x["iter"] >= upto)
    return {k: line[f"gshare/{k}"] for k in TEACHER_TERMS}


def calibrated_card(work: Path, ratio: float, shares: dict[str, float]) -> Path:
    """A user card: ``robustseg`` with each teacher term weighted to ``ratio`` x the CE's gradient norm."""
    from rsbench.cards import card_path

    raw = yaml.safe_load(card_path("robustseg").read_text())
    def reweighted(spec: float | dict, factor: float) -> float | dict:  # a weight, or {weight, option: value}
        return {**spec, "weight": spec["weight"] * factor} if isinstance(spec, dict) else spec * factor

    raw["losses"] = {"ohem_ce": raw["losses"]["ohem_ce"],
                     **{k: reweighted(raw["losses"][k], ratio / shares[k]) for k in TEACHER_TERMS}}
    raw["description"] = f"robustseg, teacher terms at {ratio} x the CE gradient norm (first 50 iterations)"
    path = work / "cards" / f"robustseg-share{ratio:g}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(raw, sort_keys=False)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args()
    work = args.work.resolve()
    runs = work / "runs" / DATASET
    if not args.table_only:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        schedule(work, runs, args.seeds, args.jobs)
    print_tables(work, runs, args.seeds)


def schedule(work: Path, runs: Path, seeds: list[int], jobs: int) -> None:
    """Teachers first, then the calibration, then the students (FIFO: dependencies are always ahead)."""
    pool = ThreadPoolExecutor(jobs)
    teachers: dict[int, Future] = {}
    for s in seeds:
        out = runs / f"teacher-s{s}"
        teachers[s] = pool.submit(lambda out=out, s=s: (train("teacher", out, s, []), evaluate(out))[0])

    def calibrate() -> dict[str, float]:
        out = work / "calibration"
        t = teachers[seeds[0]].result()
        train("robustseg", out, seeds[0], ["--stage", "student", "--teacher", str(t), "--iters", "50",
                                           "--log-grad-share"])
        return first_shares(out / "log.jsonl")

    calibration = pool.submit(calibrate)
    done: list[Future] = []
    for s in seeds:
        for name in (*STUDENTS, *(f"share{r:g}" for r in RATIOS)):

            def job(name: str = name, s: int = s) -> None:
                t = teachers[s].result()
                if name.startswith("share"):
                    card = str(calibrated_card(work, float(name[5:]), calibration.result()))
                else:
                    card = name
                out = runs / f"{name}-s{s}"
                train(card, out, s, ["--stage", "student", "--teacher", str(t), "--log-grad-share"])
                evaluate(out)

            done.append(pool.submit(job))
    for f in [*teachers.values(), calibration, *done]:
        f.result()
    pool.shutdown()


def _summary(path: Path) -> dict[str, float]:
    return json.loads(path.read_text())["summary"]


def _ms(values: list[float], digits: int = 2) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"


def _log_lines(run: Path) -> list[dict]:
    path = run / "log.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []


def print_tables(work: Path, runs: Path, seeds: list[int]) -> None:
    names = ("teacher", *STUDENTS, *(f"share{r:g}" for r in RATIOS))
    print(f"seeds {seeds}; val, nanmean mIoU; mean ± sd over the seeds that finished (n)\n")
    print("| method | n | full | EMM Avg | EMM-drop Avg | EMM worst | full / teacher full | Avg / teacher Avg |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in names:
        rows = []
        for s in seeds:
            run_dir = runs / f"{name}-s{s}"
            t_dir = runs / f"teacher-s{s}"
            if (run_dir / "emm-drop.json").is_file() and (t_dir / "emm.json").is_file():
                z, d = _summary(run_dir / "emm.json"), _summary(run_dir / "emm-drop.json")
                t = _summary(t_dir / "emm.json")
                rows.append((z["full"], z["avg"], d["avg"], z["worst"], z["full"] / t["full"], z["avg"] / t["avg"]))
        cols = list(zip(*rows, strict=True)) if rows else [[]] * 6
        cells = [_ms(list(c), 3 if i >= 4 else 2) for i, c in enumerate(cols)]
        print(f"| {name} | {len(rows)} | " + " | ".join(cells) + " |")
    print("\nencoder gradient norm of each weighted term / the CE's (log.jsonl, --log-grad-share), "
          "first log line (iterations 1-50) and last (3551-3600), mean over seeds\n")
    print("| method | weights | KD start | HPDM start | RRM start | KD end | HPDM end | RRM end |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name in names[1:]:
        start: dict[str, list[float]] = {k: [] for k in TEACHER_TERMS}
        end: dict[str, list[float]] = {k: [] for k in TEACHER_TERMS}
        weights = ""
        for s in seeds:
            lines = _log_lines(runs / f"{name}-s{s}")
            if not lines or lines[-1]["iter"] < 3600:
                continue
            card = yaml.safe_load((runs / f"{name}-s{s}" / "card.yaml").read_text())
            weights = ", ".join(f"{k} {v:.3g}" for k, v in card["losses"].items() if k != "ohem_ce")
            for k in TEACHER_TERMS:
                if f"gshare/{k}" in lines[0]:
                    start[k].append(lines[0][f"gshare/{k}"])
                    end[k].append(lines[-1][f"gshare/{k}"])
        cells = [f"{statistics.mean(v):.3g}" if v else "-" for v in (*start.values(), *end.values())]
        print(f"| {name} | {weights or '-'} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
