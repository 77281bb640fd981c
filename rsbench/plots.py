"""Figures of evaluation records and of a model's predictions (matplotlib, PNG, no display needed).

- ``plot_record``: per-condition mIoU bars for subset protocols (EMM, EMM-drop, RMM) and noise;
  mIoU against severity, one line per corruption, one panel per modality, for ``corruptions``.
- ``plot_predictions``: a grid for a few samples: the inputs, the label and the prediction under
  each chosen condition.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_record(record: dict[str, Any], path: str | Path) -> Path:
    """One figure for one record (``rsbench.results.read_record``); returns the PNG path."""
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scores = {k: v["miou"] for k, v in record["conditions"].items()}
    title = f"{record['method']} on {record['dataset']}/{record['split']}: {record['protocol']}"
    kind = (record.get("protocol_card") or {}).get("kind")
    if kind == "corruptions":
        fig = _severity_figure(plt, scores, record["modalities"])
    else:
        fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(scores)), 4))
        keys = list(scores)
        ax.bar(range(len(keys)), [scores[k] for k in keys], color="tab:blue")
        ax.set_xticks(range(len(keys)), keys, rotation=60, ha="right", fontsize=8)
        ax.set_ylabel("mIoU")
        if "avg" in record["summary"]:
            avg = record["summary"]["avg"]
            ax.axhline(avg, color="tab:orange", ls="--", label=f"avg {avg:.1f}")
            ax.legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _severity_figure(plt, scores: dict[str, float], modalities: Sequence[str]):
    clean = scores.get("full", float("nan"))
    fig, axes = plt.subplots(1, len(modalities), figsize=(4 * len(modalities), 3.6), squeeze=False, sharey=True)
    for ax, m in zip(axes[0], modalities, strict=True):
        curves: dict[str, dict[int, float]] = {}
        for key, v in scores.items():
            if key.startswith(f"{m}:"):
                name, sev = key[len(m) + 1:].rsplit("@", 1)
                curves.setdefault(name, {})[int(sev)] = v
        for name, pts in sorted(curves.items()):
            xs = [0, *sorted(pts)]
            ax.plot(xs, [clean, *(pts[s] for s in xs[1:])], marker="o", ms=3, label=name)
        ax.set_title(m)
        ax.set_xlabel("severity")
        if curves:
            ax.legend(fontsize=6)
    axes[0][0].set_ylabel("mIoU")
    return fig


def _show(x: torch.Tensor) -> np.ndarray:
    """A modality tensor [C, H, W] as an image in [0, 1] (per-sample min-max)."""
    a = x.detach().float().cpu()
    a = (a - a.min()) / (a.max() - a.min() + 1e-8)
    return (a[:3].permute(1, 2, 0) if a.shape[0] >= 3 else a[0]).numpy()


def _colour(label: torch.Tensor, num_classes: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    palette = np.concatenate([rng.uniform(0.1, 1.0, (num_classes, 3)), np.zeros((256 - num_classes, 3))])
    return palette[label.cpu().numpy().clip(0, 255)]


def plot_predictions(samples: list[dict[str, Any]], predictions: dict[str, list[torch.Tensor]], num_classes: int,
                     path: str | Path) -> Path:
    """Rows: samples; columns: each modality, the label, then each condition's prediction."""
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(samples[0]["modalities"])
    cols = len(names) + 1 + len(predictions)
    fig, axes = plt.subplots(len(samples), cols, figsize=(1.9 * cols, 1.9 * len(samples) + 0.4), squeeze=False)
    for r, sample in enumerate(samples):
        panels = [(n, _show(sample["modalities"][n])) for n in names]
        panels.append(("label", _colour(sample["label"], num_classes)))
        panels += [(key, _colour(preds[r], num_classes)) for key, preds in predictions.items()]
        for c, (title, img) in enumerate(panels):
            ax = axes[r][c]
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def prediction_conditions(keys: Sequence[str], most: int = 4) -> list[str]:
    """A few conditions to show: the first (full), the worst-placed ones spread over the list."""
    if len(keys) <= most:
        return list(keys)
    step = max(1, math.floor((len(keys) - 1) / (most - 1)))
    return [keys[i] for i in range(0, len(keys), step)][:most]
