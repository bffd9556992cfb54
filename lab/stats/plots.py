"""Figures the studies log: confusion matrices and 2-D embedding maps (matplotlib, Agg backend)."""

from __future__ import annotations

import io
import textwrap
from collections import OrderedDict
from typing import Callable, Sequence

import matplotlib

matplotlib.use("Agg")  # headless: figures are files, never windows
import matplotlib.lines  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402


def figure_bytes(fig: plt.Figure, *, dpi: int, fmt: str = "png", tight: bool = True) -> bytes:
    """The figure drawn into ``fmt`` bytes at ``dpi``, then closed.

    ``tight`` crops to the drawn content (one extra drawing pass); a figure laid out with
    ``tight_layout`` already fits and may pass ``tight=False``.
    """
    try:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight" if tight else None)
        return buf.getvalue()
    finally:
        plt.close(fig)


_PNG_MEMO: OrderedDict[str, bytes] = OrderedDict()  # key -> PNG bytes, newest last (a few maps, not a store)


def cached_png(key: str, make: Callable[[], plt.Figure], *, dpi: int) -> bytes:
    """PNG bytes of the figure ``make()`` builds, rendered once per process for one ``key``.

    Drawing a figure takes ~0.3-0.7 s on a 2-core machine; the jobs of a seed sweep log the same
    t-SNE map again and again, so a sweep process renders each map once. ``key`` must cover
    everything the figure shows (e.g. a digest of the coordinates, labels and title).
    """
    full = f"{key}|{dpi}"
    if full not in _PNG_MEMO:
        _PNG_MEMO[full] = figure_bytes(make(), dpi=dpi)
        while len(_PNG_MEMO) > 8:
            _PNG_MEMO.popitem(last=False)
    return _PNG_MEMO[full]


def _finish_map(fig: plt.Figure, ax: plt.Axes, title: str, *, markerscale: float) -> plt.Figure:
    """Title, no ticks (map axes mean nothing), legend outside on the right, tight layout."""
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, markerscale=markerscale, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    return fig


def _wrapped(title: str, fig_width_in: float, fontsize: float) -> str:
    """``title`` broken into lines that fit the figure's width (a long title was clipped on small matrices)."""
    chars = max(20, int(fig_width_in * 72 / (0.55 * fontsize)))  # ~0.55 em per character in DejaVu Sans
    return "\n".join(textwrap.fill(line, chars) for line in title.splitlines())


def confusion_matrix(cm: np.ndarray, rows: Sequence[str], cols: Sequence[str], *, title: str) -> plt.Figure:
    """Heat map of the counts ``cm`` [shape=(len(rows), len(cols))]: each cell shows its count and is
    shaded by its share of the row (the true label), so the raw and the row-normalised views are one
    figure and a small genre reads as clearly as a large one."""
    share = cm.astype(float) / np.maximum(cm.sum(1, keepdims=True), 1)
    width = max(4.5, 1.0 + 0.55 * len(cols))
    fig, ax = plt.subplots(figsize=(width, 1.6 + 0.5 * len(rows)))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("assigned (cluster -> genre by Hungarian matching)")
    ax.set_ylabel("true label")
    ax.set_title(_wrapped(title, width, 10), fontsize=10)
    for i, j in zip(*np.nonzero(cm)):
        ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=7, color="white" if share[i, j] > 0.6 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true label's songs")
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
    return _finish_map(fig, ax, title, markerscale=1.2)


def similarity_heatmap(value: np.ndarray, names: Sequence[str], *, title: str, label: str,
                       lo: np.ndarray | None = None, hi: np.ndarray | None = None,
                       higher_is_similar: bool = True, vmax: float = 1.0, vmin: float = 0.0,
                       chance: np.ndarray | None = None) -> plt.Figure:
    """Models × models heat map of ``value`` [shape=(k, k)], each cell annotated with its value and,
    when ``lo``/``hi`` are given, its interval, and when ``chance`` [shape=(k, k)] is given, the chance
    level of that pair (e.g. a percentile of a permutation null); darker = more alike whichever way
    the measure points."""
    k = len(names)
    fig, ax = plt.subplots(figsize=(2.0 + 1.05 * k, 1.6 + 0.9 * k))
    im = ax.imshow(value, cmap="viridis" if higher_is_similar else "viridis_r", vmin=vmin, vmax=vmax)
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), names)
    for i in range(k):
        for j in range(k):
            v = value[i, j]
            dark = (v < vmin + 0.55 * (vmax - vmin)) if higher_is_similar else (v > vmin + 0.45 * (vmax - vmin))
            txt = (f"{v:.2f}" + (f"\n[{lo[i, j]:.2f}, {hi[i, j]:.2f}]" if lo is not None and i != j else "")
                   + (f"\nchance {chance[i, j]:.2f}" if chance is not None and i != j else ""))
            ax.text(j, i, txt, ha="center", va="center", fontsize=6.5, color="white" if dark else "black")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=label)
    fig.tight_layout()
    return fig


SET_MARKERS = ("*", "^", "D", "P", "X", "s", "v", "h")  # one per new set; reference genres are dots
SET_COLOURS = ("#d62728", "#1f4e9c", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def placement_map(xy: np.ndarray, labels: Sequence[str], sets: Sequence[str], *, title: str,
                  parents: dict[str, tuple[str, str]] | None = None) -> plt.Figure:
    """The study's Figure 5: new sets highlighted over muted reference genres in a 2-D map.

    Parameters
    ----------
    xy : np.ndarray [shape=(n, 2)] — map coordinates (t-SNE or UMAP).
    labels : sequence of str [shape=(n,)] — a reference genre or a set name per row.
    sets : the labels to highlight (distinct marker and strong colour each, drawn on top).
    parents : fusion set -> its two parents; a dashed line joins the parents' map medians and the
        legend names them. Medians, not means, so one stray point does not move the label.
    """
    labels = np.asarray(labels)
    parents = parents or {}
    reference = sorted(set(labels.tolist()) - set(sets))
    muted = plt.get_cmap("tab10" if len(reference) <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(8.5, 6.5))
    centre = {name: np.median(xy[labels == name], axis=0) for name in set(labels.tolist())}
    for i, g in enumerate(reference):
        sel = labels == g
        ax.scatter(xy[sel, 0], xy[sel, 1], s=16, color=muted(i % muted.N), alpha=0.35, edgecolors="none", label=g)
        if not any(g in ps for ps in parents.values()):  # parents get a bold name below
            ax.annotate(g, centre[g], ha="center", va="center", fontsize=7, color="0.35")
    for i, s in enumerate(sets):
        sel = labels == s
        name = f"{s} (fusion of {parents[s][0]} + {parents[s][1]})" if s in parents else s
        ax.scatter(xy[sel, 0], xy[sel, 1], s=70, marker=SET_MARKERS[i % len(SET_MARKERS)],
                   color=SET_COLOURS[i % len(SET_COLOURS)], edgecolors="black", linewidths=0.5, zorder=3,
                   label=f"{name} ({int(sel.sum())})")
    for s, (a, b) in parents.items():
        (x0, y0), (x1, y1) = centre[a], centre[b]
        ax.plot([x0, x1], [y0, y1], ls="--", lw=1, color="0.3", zorder=2)
        for p in (a, b):
            ax.annotate(p, centre[p], xytext=(0, 9), textcoords="offset points", ha="center", fontsize=8, weight="bold")
    return _finish_map(fig, ax, title, markerscale=1.0)


def dream_spectrogram(y: np.ndarray, *, sr: int, title: str, n_fft: int = 2048, hop: int = 512) -> plt.Figure:
    """Spectrogram of ``y`` [shape=(n,)] as in the study's Figure 4: log-frequency axis, time in
    seconds, colour bar in dB relative to the loudest bin (floor -80 dB)."""
    import librosa
    import librosa.display

    s = np.abs(librosa.stft(np.asarray(y, dtype=np.float32), n_fft=n_fft, hop_length=hop))
    db = librosa.amplitude_to_db(s, ref=np.max(s) if s.max() > 0 else 1.0, top_db=80.0)
    fig, ax = plt.subplots(figsize=(9, 4))
    img = librosa.display.specshow(db, sr=sr, hop_length=hop, x_axis="s", y_axis="log", ax=ax, cmap="magma")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    ax.set_title(title, fontsize=10)
    fig.colorbar(img, ax=ax, format="%+2.0f dB", label="dB re loudest bin")
    fig.tight_layout()
    return fig


def loss_curve(steps: np.ndarray, loss: np.ndarray, *, title: str, mse: np.ndarray | None = None) -> plt.Figure:
    """Optimisation loss over steps [shape=(n,)] on a log axis (a dream's Figure 4 companion); ``mse`` beside it."""
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.semilogy(steps, loss, label="loss", color="#1f4e9c")
    if mse is not None:
        ax.semilogy(steps, mse, label="MSE to target", color="#d62728", linestyle="--")
        ax.legend(fontsize=8)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (log)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


R2_FLOOR = -1.0  # R^2 below this is drawn at the floor with a marker and its value (it is unbounded below)


def _amount_x(kind: str, amount: np.ndarray) -> np.ndarray:
    """Pitch ratios in semitones; other kinds (tempo) as ratios."""
    return 12 * np.log2(amount) if kind == "pitch" else np.asarray(amount, dtype=float)


def transform_vs_amount(curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]], *, title: str,
                        chance: float | None = None,
                        zero: dict[str, dict[str, tuple[float, float]]] | None = None) -> plt.Figure:
    """Held-out R^2 and NN accuracy against the shift amount, one line per transform.

    ``curves[kind][transform] = (amount, r2, nn_accuracy)``, arrays [shape=(n_amounts,)]; pitch
    amounts are drawn in semitones, tempo amounts as ratios on a log axis, with ticks at the
    sampled amounts. ``zero[kind][transform] = (r2, nn_accuracy)`` is the no-shift point (``Y = X``,
    amount 1 = 0 semitones), drawn as an open circle on the line. R^2 is at most 1 (the axis
    stops there); an R^2 below -1 is drawn at -1 as a down-pointing triangle labelled with its value.
    """
    zero = zero or {}
    kinds = [k for k in ("pitch", "tempo") if k in curves] + sorted(set(curves) - {"pitch", "tempo"})
    fig, axes = plt.subplots(2, len(kinds), figsize=(4.8 * len(kinds), 6.6), squeeze=False, sharey="row")
    clipped_any = False
    r2_low = 0.0
    for j, kind in enumerate(kinds):
        ticks: set[float] = set()
        stacked: dict[float, int] = {}  # labels of clipped points at one x are stacked, not overprinted
        for i, (name, (amount, r2, nn)) in enumerate(curves[kind].items()):
            amount, r2, nn = (np.asarray(v, dtype=float) for v in (amount, r2, nn))
            colour = f"C{i % 10}"
            z = zero.get(kind, {}).get(name)
            if z is not None and not np.isclose(amount, 1.0).any():
                amount, r2, nn = np.append(amount, 1.0), np.append(r2, z[0]), np.append(nn, z[1])
            x = _amount_x(kind, amount)
            order = np.argsort(x)
            x, r2, nn, amount = x[order], r2[order], nn[order], amount[order]
            ticks |= set(np.round(x, 2).tolist())
            shown = np.maximum(r2, R2_FLOOR)
            axes[0, j].plot(x, shown, color=colour, lw=1.2, label=name, clip_on=False)
            axes[1, j].plot(x, nn, color=colour, lw=1.2, label=name, clip_on=False)
            at0 = np.isclose(amount, 1.0) if z is not None else np.zeros(len(x), bool)
            low = r2 < R2_FLOOR
            plain = ~at0 & ~low
            axes[0, j].plot(x[plain], shown[plain], "o", ms=3.5, color=colour, clip_on=False)
            axes[1, j].plot(x[~at0], nn[~at0], "o", ms=3.5, color=colour, clip_on=False)
            for ax, y in ((axes[0, j], shown), (axes[1, j], nn)):
                ax.plot(x[at0], y[at0], "o", ms=6, mfc="white", mec=colour, mew=1.2, clip_on=False, zorder=3)
            if low.any():
                clipped_any = True
                axes[0, j].plot(x[low], shown[low], "v", ms=7, color=colour, clip_on=False, zorder=3)
                for xi, v in zip(x[low], r2[low]):
                    row = stacked[round(float(xi), 6)] = stacked.get(round(float(xi), 6), -1) + 1
                    axes[0, j].annotate(f"{v:.1f}", (xi, R2_FLOOR), xytext=(5, 3 + 8 * row), textcoords="offset points",
                                        fontsize=6.5, color=colour)
            r2_low = min(r2_low, float(np.min(shown)))
        for ax in axes[:, j]:
            if kind != "pitch":
                ax.set_xscale("log")
            ax.set_xticks(sorted(ticks))
            ax.set_xticklabels([f"{t:g}" for t in sorted(ticks)], fontsize=7, rotation=45 if len(ticks) > 6 else 0)
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            ax.grid(alpha=0.3)
        axes[1, j].set_xlabel("pitch shift (semitones)" if kind == "pitch" else "tempo ratio (log axis)")
        axes[0, j].set_title(f"{kind} shift", fontsize=10)
        axes[0, j].axhline(0, color="grey", lw=0.6)
        if chance is not None:
            axes[1, j].axhline(chance, color="grey", lw=0.8, ls="--", label="chance (1/n)")
    axes[0, 0].set_ylabel("R² (held out)")
    axes[1, 0].set_ylabel("NN accuracy (held out)")
    # R^2 <= 1 by definition and NN accuracy is a share: neither axis runs past 1.
    axes[0, 0].set_ylim(min(-0.05, r2_low - 0.08), 1.0)
    axes[1, 0].set_ylim(0.0, 1.0)
    handles, labels = axes[1, -1].get_legend_handles_labels()
    marker = matplotlib.lines.Line2D
    handles.append(marker([], [], ls="", marker="o", mfc="white", mec="black", ms=6))
    labels.append("no shift (Y = X)")
    if clipped_any:
        handles.append(marker([], [], ls="", marker="v", color="black", ms=7))
        labels.append(f"R² < {R2_FLOOR:g}, drawn at {R2_FLOOR:g} (value printed)")
    axes[1, -1].legend(handles, labels, fontsize=7, loc="best")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def transform_vs_rank(curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]], *, title: str,
                      full: dict[str, dict[str, float]] | None = None) -> plt.Figure:
    """Held-out R^2 of each map fitted in a k-dim PCA subspace, against k (log axis), one panel per shift kind.

    ``curves[kind][transform] = (rank, r2, (lo, hi) or None)``; ``full[kind][transform]`` = the
    full-space R^2, drawn as a dotted horizontal line. R^2 below -1 is drawn at -1 (triangle).
    """
    full = full or {}
    kinds = sorted(curves, key=lambda k: (k != "pitch", k != "tempo", k))
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.8 * len(kinds), 3.8), squeeze=False, sharey=True)
    low = 0.0
    for j, kind in enumerate(kinds):
        ax = axes[0, j]
        ranks: set[int] = set()
        for i, (name, (rank, r2, band)) in enumerate(curves[kind].items()):
            colour = f"C{i % 10}"
            rank, r2 = np.asarray(rank, dtype=float), np.asarray(r2, dtype=float)
            shown = np.maximum(r2, R2_FLOOR)
            ax.plot(rank, shown, "o-", ms=3.5, lw=1.2, color=colour, label=name, clip_on=False)
            if band is not None:
                ax.fill_between(rank, np.maximum(band[0], R2_FLOOR), np.minimum(band[1], 1.0), color=colour, alpha=0.12, lw=0)
            if (r2 < R2_FLOOR).any():
                ax.plot(rank[r2 < R2_FLOOR], shown[r2 < R2_FLOOR], "v", ms=7, color=colour, clip_on=False)
            if name in full.get(kind, {}):
                ax.axhline(max(full[kind][name], R2_FLOOR), color=colour, lw=0.9, ls=":")
            ranks |= {int(r) for r in rank}
            low = min(low, float(np.min(shown)))
        ax.set_xscale("log")
        ax.set_xticks(sorted(ranks))
        ax.set_xticklabels([str(r) for r in sorted(ranks)])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlabel("PCA rank k of the map (translation outside)")
        ax.set_title(f"{kind} shift", fontsize=10)
        ax.axhline(0, color="grey", lw=0.6)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("R² (held out)")
    axes[0, 0].set_ylim(min(-0.05, low - 0.08), 1.0)
    axes[0, -1].legend(fontsize=7, loc="best", title="dotted: full space", title_fontsize=7)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def transfer_matrices(mats: dict, *, title: str) -> plt.Figure:
    """One heat map per judge: rows = the genre dreamed (last row ``start``: the starting waveforms), columns =
    the genre the judge calls the dream, cells = counts (``mats[judge]`` a DataFrame of ints); the diagonal
    (judged as its target) is outlined."""
    k = len(mats)
    fig, axes = plt.subplots(1, k, figsize=(4.2 * k + 0.6, 4.9), squeeze=False)
    for ax, (judge, m) in zip(axes[0], mats.items()):
        v = m.to_numpy(dtype=float)
        dreams = v[:-1]
        top = max(1.0, float(dreams.max()))
        ax.imshow(v / top, cmap="Blues", vmin=0, vmax=1, aspect="auto")
        ax.axhline(len(v) - 1.5, color="black", lw=1)  # the start row is a control, not a dream
        rows, cols = list(m.index), list(m.columns)
        ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
        for i in range(len(rows)):
            for j in range(len(cols)):
                if v[i, j]:
                    ax.text(j, i, f"{int(v[i, j])}", ha="center", va="center", fontsize=7,
                            color="white" if v[i, j] / top > 0.6 else "black")
            if i < len(rows) - 1 and rows[i] in cols:
                j = cols.index(rows[i])
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="crimson", lw=1.2))
        ax.set_title(f"judged by {judge}", fontsize=9)
        ax.set_xlabel("called (nearest genre mean)", fontsize=8)
    axes[0, 0].set_ylabel("dreamed genre (count over seeds)", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
