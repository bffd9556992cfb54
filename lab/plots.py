"""Figures the studies log: confusion matrices and 2-D embedding maps (matplotlib, Agg backend)."""

from __future__ import annotations

from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: figures are files, never windows
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def confusion_matrix(cm: np.ndarray, rows: Sequence[str], cols: Sequence[str], *, title: str, normalize: bool = False) -> plt.Figure:
    """Heat map of ``cm`` [shape=(len(rows), len(cols))]; with ``normalize`` each row sums to 1."""
    data = cm.astype(float)
    if normalize:
        data = data / np.maximum(data.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(cols), 1.0 + 0.5 * len(rows)))
    im = ax.imshow(data, cmap="Blues", vmin=0)
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("assigned (cluster -> genre by Hungarian matching)")
    ax.set_ylabel("true label")
    ax.set_title(title, fontsize=10)
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


def transform_vs_amount(curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]], *, title: str,
                        chance: float | None = None) -> plt.Figure:
    """Held-out R^2 and NN accuracy against the shift amount, one line per transform.

    ``curves[kind][transform] = (amount, r2, nn_accuracy)``, arrays [shape=(n_amounts,)]; pitch
    amounts are drawn in semitones, tempo amounts as ratios on a log axis.
    """
    kinds = [k for k in ("pitch", "tempo") if k in curves] + sorted(set(curves) - {"pitch", "tempo"})
    fig, axes = plt.subplots(2, len(kinds), figsize=(4.6 * len(kinds), 6.4), squeeze=False, sharey="row")
    for j, kind in enumerate(kinds):
        for name, (amount, r2, nn) in curves[kind].items():
            x = 12 * np.log2(amount) if kind == "pitch" else amount
            order = np.argsort(x)
            axes[0, j].plot(x[order], r2[order], marker="o", ms=3, label=name)
            axes[1, j].plot(x[order], nn[order], marker="o", ms=3, label=name)
        axes[1, j].set_xlabel("pitch shift (semitones)" if kind == "pitch" else "tempo ratio")
        if kind != "pitch":
            axes[0, j].set_xscale("log")
            axes[1, j].set_xscale("log")
        axes[0, j].set_title(f"{kind} shift", fontsize=10)
        axes[0, j].axhline(0, color="grey", lw=0.6)
        if chance is not None:
            axes[1, j].axhline(chance, color="grey", lw=0.8, ls="--", label="chance (1/n)")
        for ax in axes[:, j]:
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("R² (held out)")
    axes[1, 0].set_ylabel("NN accuracy (held out)")
    axes[0, 0].set_ylim(bottom=max(-1.0, axes[0, 0].get_ylim()[0]))
    axes[1, -1].legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
