"""Figures the studies log: confusion matrices and 2-D embedding maps (matplotlib, Agg backend)."""

from __future__ import annotations

import textwrap
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: figures are files, never windows
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _wrapped(title: str, fig_width_in: float, fontsize: float) -> str:
    """``title`` broken into lines that fit the figure's width (a long title was clipped on small matrices)."""
    chars = max(20, int(fig_width_in * 72 / (0.55 * fontsize)))  # ~0.55 em per character in DejaVu Sans
    return "\n".join(textwrap.fill(line, chars) for line in title.splitlines())


def confusion_matrix(cm: np.ndarray, rows: Sequence[str], cols: Sequence[str], *, title: str, normalize: bool = False) -> plt.Figure:
    """Heat map of ``cm`` [shape=(len(rows), len(cols))]; with ``normalize`` each row sums to 1."""
    data = cm.astype(float)
    if normalize:
        data = data / np.maximum(data.sum(1, keepdims=True), 1)
    width = max(4.5, 1.0 + 0.55 * len(cols))
    fig, ax = plt.subplots(figsize=(width, 1.6 + 0.5 * len(rows)))
    im = ax.imshow(data, cmap="Blues", vmin=0)
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("assigned (cluster -> genre by Hungarian matching)")
    ax.set_ylabel("true label")
    ax.set_title(_wrapped(title, width, 10), fontsize=10)
    hi = data.max() if data.size else 1
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            if cm[i, j]:
                txt = f"{data[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
                ax.text(j, i, txt, ha="center", va="center", fontsize=7, color="white" if data[i, j] > 0.6 * hi else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def embedding_map(xy: np.ndarray, labels: Sequence[str], *, title: str, marked: dict[int, str] | None = None) -> plt.Figure:
    """Scatter of 2-D points ``xy`` [shape=(n, 2)] coloured by label; ``marked`` rows get a ring and a text label."""
    labels = np.asarray(labels)
    names = sorted(set(labels))
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(7.5, 6))
    for i, name in enumerate(names):
        sel = labels == name
        ax.scatter(xy[sel, 0], xy[sel, 1], s=22, color=cmap(i % cmap.N), label=name, alpha=0.85, edgecolors="none")
    for row, text in (marked or {}).items():
        ax.scatter(xy[row, 0], xy[row, 1], s=110, facecolors="none", edgecolors="black", linewidths=1.2)
        ax.annotate(text, xy[row], xytext=(5, 5), textcoords="offset points", fontsize=7)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, markerscale=1.2, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    return fig
