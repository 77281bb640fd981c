"""The training log: ``log.jsonl`` beside ``last.pt``, one JSON line per logged interval.

Why a file and not only the progress bar: loss scales (is HPDM x100 drowning the CE?) and
learning curves must survive the terminal, and a crash must not lose them. Each line holds the
interval's mean of every raw loss term, the weighted total, the learning rate and, on
validation iterations, the val mIoU. With ``--log-grad-share`` it also holds, per weighted term,
``gnorm/<term>`` (the L2 norm of that term's weighted gradient on the encoder) and
``gshare/<term>`` (that norm over the cross-entropy's), averaged over the steps measured in the
interval (every ``GRAD_SHARE_EVERY``-th step). On resume, lines written after the checkpoint's iteration
are dropped, so the log always matches the weights it sits beside.
"""

from __future__ import annotations

import json
from pathlib import Path

from rsbench.io import write_text

LOG_NAME = "log.jsonl"


class TrainLog:
    """Averages loss terms over ``interval`` iterations and appends them as JSON lines."""

    def __init__(self, out_dir: Path, interval: int, start_iter: int = 0) -> None:
        self.path = out_dir / LOG_NAME
        self.interval = max(1, interval)
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._fresh = start_iter == 0  # a new run starts a new log at its first line, not before
        if not self._fresh:
            self._truncate_after(start_iter)

    def _truncate_after(self, it: int) -> None:
        kept = []
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    if json.loads(line)["iter"] <= it:
                        kept.append(line)
                except (ValueError, KeyError, TypeError):
                    break  # a torn last line from a crash ends the usable log
        write_text(self.path, "".join(f"{line}\n" for line in kept))

    def step(self, it: int, lr: float, loss: float, terms: dict[str, float], val_miou: float | None = None) -> None:
        """Record iteration ``it`` (1-based); write a line every ``interval`` iterations or on validation."""
        for k, v in {"loss": loss, **terms}.items():
            self._sums[k] = self._sums.get(k, 0.0) + v
            self._counts[k] = self._counts.get(k, 0) + 1
        if it % self.interval == 0 or val_miou is not None:
            record: dict[str, float | int] = {"iter": it, "lr": lr}
            record.update({k: v / self._counts[k] for k, v in self._sums.items()})
            if val_miou is not None:
                record["val_miou"] = val_miou
            if self._fresh:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("w" if self._fresh else "a") as f:
                f.write(json.dumps(record) + "\n")
            self._fresh = False
            self._sums, self._counts = {}, {}


def read_log(path: str | Path) -> list[dict[str, float]]:
    """The records of a ``log.jsonl`` (or of the one inside a run folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / LOG_NAME
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
