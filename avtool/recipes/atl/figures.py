"""The ATL recipe's figures: confusion matrices (counts and percentages) and training curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> None:
    from avtool.core import atomic

    with atomic.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)


def confusion_figure(path: Path, confusion: np.ndarray, labels: list[str], title: str) -> None:
    """Counts with their share of all items, as the report's percentage confusion matrices."""
    plt = _pyplot()
    total = max(int(confusion.sum()), 1)
    figure, axes = plt.subplots(figsize=(4.5, 4))
    axes.imshow(confusion, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels)
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title, fontsize=10)
    for (row, col), value in np.ndenumerate(confusion):
        axes.text(col, row, f"{value}\n{100 * value / total:.0f}%", ha="center", va="center")
    figure.tight_layout()
    _save(figure, path)
    plt.close(figure)


def curves_figure(path: Path, history: list[dict], keys: list[str], title: str) -> None:
    """One line per metric in `keys` over the epochs of a `metrics.jsonl` history."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5, 3.5))
    epochs = [record["epoch"] for record in history]
    for key in keys:
        values = [record.get(key) for record in history]
        if any(v is not None for v in values):
            axes.plot(epochs, values, marker="o", markersize=3, label=key)
    axes.set_xlabel("epoch")
    axes.set_title(title, fontsize=10)
    axes.legend()
    figure.tight_layout()
    _save(figure, path)
    plt.close(figure)
