"""A 2-D embedding map you can listen to: one self-contained HTML page plus short audio previews.

    page = write_listen_map(out_dir, xy, points, previews, title="t-SNE of fcn embeddings")

The page (Bokeh, its JavaScript embedded, so it opens with no network) draws one dot per song,
coloured by genre; rogue songs are ringed as in the PNG map. Hovering shows the file, genre,
assigned cluster (and the genre Hungarian matching gave it) and the rogue score; clicking a dot
plays that song's preview in the page's audio player. Previews are ``previews/<row>.mp3`` beside
the page — 10 s from the middle of the song, mono, 16 kHz (the audio the tagger was fed), about
34 kB each — so the folder (page + previews) is what gets logged and what a user downloads.

Why Bokeh and not Plotly: with 1000 points and the same hover/click behaviour, the Bokeh page is
1.3 MB and draws in 2-3 s in headless Chromium, the Plotly page 4.9 MB and 7-9 s (measured on the
2-core development machine under load; see the notes of the uncertainty/listening work).

Why MP3: every current browser plays it (Ogg Vorbis is not universal on Safari); at 16 kHz and
libsndfile's compression level 0.8 a 10-s preview is ~34 kB, encoded in ~0.3 s. Previews are
cached under ``<cache>/previews/`` by audio content, so a sweep encodes each song once.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from lab.core.errors import LabError
from lab.core.storage import atomic_write

log = logging.getLogger(__name__)

PREVIEW_SR = 16000
PREVIEW_FORMAT = ("MP3", "MPEG_LAYER_III", 0.8)  # container, codec, libsndfile compression level
# Layout constants, also written into the page so a test (or a script) can find a dot's pixel.
FRAME_W, FRAME_H, BORDER = 760, 620, 20


@dataclass(frozen=True)
class MapPoint:
    """What the hover shows for one song."""

    id: str
    file: str
    genre: str
    cluster: str  # e.g. "3 -> jazz" (cluster id and the genre it was matched to)
    rogue_score: float  # 0 for songs that are not rogue (see lab.stats.genres)
    rogue: bool = False


def encode_preview(y: np.ndarray, *, sr: int = PREVIEW_SR, seconds: float = 10.0) -> bytes:
    """MP3 bytes of ``seconds`` from the middle of ``y`` [shape=(n,)] (the whole clip if shorter)."""
    import soundfile as sf

    if y.ndim != 1 or y.size == 0:
        raise LabError(f"a preview needs mono audio of shape (n,), got shape={y.shape}")
    n = int(seconds * sr)
    start = max(0, (len(y) - n) // 2)
    seg = np.clip(y[start:start + n], -1.0, 1.0).astype(np.float32)
    buf = io.BytesIO()
    container, codec, level = PREVIEW_FORMAT
    sf.write(buf, seg, sr, format=container, subtype=codec, compression_level=level)
    return buf.getvalue()


def write_previews(out_dir: str | os.PathLike, load: Callable[[int], np.ndarray], n: int, *, keys: Sequence[str] | None = None,
                   cache_dir: str | os.PathLike | None = None, seconds: float = 10.0) -> tuple[list[str | None], list[str]]:
    """Write ``out_dir/previews/<row>.mp3`` for rows ``0..n-1``.

    load : row -> mono float32 audio at 16 kHz (e.g. ``lambda i: dataset.load(clips[i], 16000)``).
    keys : per-row audio fingerprint; with ``cache_dir``, encoded previews are reused across runs.
    Returns (relative path or None per row, one note per row that could not be previewed).
    """
    out = Path(out_dir) / "previews"
    out.mkdir(parents=True, exist_ok=True)
    tag = f"{PREVIEW_FORMAT}|{PREVIEW_SR}|{seconds}"
    paths: list[str | None] = []
    notes: list[str] = []
    for i in range(n):
        cached = None
        if keys is not None and cache_dir is not None:
            digest = hashlib.sha256(f"{keys[i]}|{tag}".encode()).hexdigest()
            cached = Path(cache_dir) / "previews" / digest[:2] / f"{digest}.mp3"
        try:
            if cached is not None and cached.exists():
                data = cached.read_bytes()
            else:
                data = encode_preview(load(i), seconds=seconds)
                if cached is not None:
                    atomic_write(cached, lambda f: f.write(data))
        except (LabError, OSError, RuntimeError) as err:  # an unreadable song loses its preview, not the page
            paths.append(None)
            notes.append(f"row {i}: no preview ({err})")
            continue
        name = f"previews/{i:05d}.mp3"
        atomic_write(Path(out_dir) / name, lambda f: f.write(data)).chmod(0o644)  # readable when served (temp files are 0600)
        paths.append(name)
    return paths, notes


def _palette(n: int) -> list[str]:
    from bokeh.palettes import Category10, Category20

    if n <= 10:
        return list(Category10[10][:max(n, 3)])[:n]
    return [Category20[20][i % 20] for i in range(n)]


def build_page(xy: np.ndarray, points: Sequence[MapPoint], previews: Sequence[str | None], *, title: str) -> str:
    """The whole HTML page (Bokeh's JavaScript inline) for ``xy`` [shape=(n, 2)] and one MapPoint per row."""
    from bokeh.embed import file_html
    from bokeh.models import ColumnDataSource, CustomJS, HoverTool, Legend, LegendItem, Range1d, TapTool
    from bokeh.plotting import figure
    from bokeh.resources import INLINE

    xy = np.asarray(xy, dtype=float)
    if xy.ndim != 2 or xy.shape[1] != 2 or len(xy) != len(points) or len(points) != len(previews):
        raise LabError(f"map coordinates shape={xy.shape} must be (n, 2) with one point and one preview per row "
                       f"({len(points)} points, {len(previews)} previews)")
    if not np.isfinite(xy).all():
        raise LabError("map coordinates contain NaN or inf; the embedding or t-SNE went wrong upstream")
    genres = sorted({p.genre for p in points})
    colour = dict(zip(genres, _palette(len(genres))))
    pad = 0.05 * max(np.ptp(xy[:, 0]), np.ptp(xy[:, 1]), 1e-9)
    xr = (float(xy[:, 0].min() - pad), float(xy[:, 0].max() + pad))
    yr = (float(xy[:, 1].min() - pad), float(xy[:, 1].max() + pad))
    src = ColumnDataSource({
        "x": xy[:, 0], "y": xy[:, 1], "id": [p.id for p in points], "file": [p.file for p in points],
        "genre": [p.genre for p in points], "cluster": [p.cluster for p in points],
        "rogue": [f"{p.rogue_score:.2f}" + (" (rogue)" if p.rogue else "") for p in points],
        "color": [colour[p.genre] for p in points], "preview": [p or "" for p in previews],
    })
    # Fixed frame and borders, no axes (t-SNE axes mean nothing): a dot's pixel is then known
    # from the data ranges alone (``listenMap.pixelOf`` below).
    fig = figure(frame_width=FRAME_W, frame_height=FRAME_H, x_range=Range1d(*xr), y_range=Range1d(*yr),
                 min_border=BORDER, tools="pan,wheel_zoom,box_zoom,reset", toolbar_location="right",
                 output_backend="canvas")
    fig.axis.visible = False
    fig.grid.visible = False
    dots = fig.scatter("x", "y", source=src, size=10, color="color", alpha=0.85, line_color="white", line_width=0.5,
                       nonselection_alpha=0.5, selection_line_color="black", selection_line_width=2, name="songs")
    rogue_rows = [i for i, p in enumerate(points) if p.rogue]
    if rogue_rows:
        fig.scatter(xy[rogue_rows, 0], xy[rogue_rows, 1], size=18, fill_alpha=0, line_color="black", line_width=1.2)
    items = [LegendItem(label=g, renderers=[dots], index=next(i for i, p in enumerate(points) if p.genre == g)) for g in genres]
    fig.add_layout(Legend(items=items, click_policy="none", label_text_font_size="9pt"), "right")
    fig.add_tools(HoverTool(renderers=[dots], tooltips=[("file", "@file"), ("genre", "@genre"), ("cluster", "@cluster"),
                                                        ("rogue score", "@rogue")]))
    play = CustomJS(args={"src": src}, code="""
        const i = src.selected.indices[0];
        if (i === undefined) return;
        window.listenMap.play(i);
    """)
    fig.add_tools(TapTool(renderers=[dots], callback=play))
    fig.toolbar.active_tap = fig.select_one(TapTool)
    meta = {"n": len(points), "frame": {"left": BORDER, "top": BORDER, "width": FRAME_W, "height": FRAME_H},
            "x_range": xr, "y_range": yr, "x": xy[:, 0].round(6).tolist(), "y": xy[:, 1].round(6).tolist(),
            "preview": [p or "" for p in previews], "label": [f"{p.file} ({p.genre})" for p in points]}
    # file_html embeds only the Bokeh bundles this figure needs (1.3 MB; INLINE.render() of all is 3.9 MB)
    return file_html(fig, INLINE, title, template=_TEMPLATE, template_variables={
        "heading": title, "n": len(points), "n_prev": sum(1 for p in previews if p), "genres": ", ".join(genres),
        "meta": json.dumps(meta).replace("</", "<\\/")})


# Bokeh's own page (bokeh prepends ``{% extends base %}``) with a heading, the audio player and the click handler.
_TEMPLATE = """
{% block postamble %}<style>body{padding:12px !important;font-family:sans-serif} #now{margin:6px 0;font-size:14px;min-height:1.2em}
audio{width:420px} h1{font-size:16px;margin:0 0 4px} p.help{font-size:12px;color:#555;margin:0 0 8px}</style>{% endblock %}
{% block contents %}
<h1>{{ heading | e }}</h1>
<p class="help">{{ n }} songs ({{ n_prev }} with a 10-s preview). Hover a dot for file, genre, assigned cluster and rogue
score; click it to listen. Ringed dots are rogue songs. Genres: {{ genres | e }}.</p>
<div><audio id="player" controls preload="none"></audio><div id="now"></div></div>
<script>
window.listenMap = Object.assign({{ meta }}, {
  play: function(i) {
    const a = document.getElementById('player'), now = document.getElementById('now');
    if (!this.preview[i]) { now.textContent = 'no preview for ' + this.label[i]; return; }
    a.src = this.preview[i];
    now.textContent = 'playing ' + this.label[i];
    a.play().catch(function(e) { now.textContent = 'cannot play ' + a.src + ': ' + e.message; });
  },
  // page pixel of row i, from the fixed frame and the data ranges (the figure has no axes or title)
  pixelOf: function(i) {
    const r = document.querySelector('.bk-Figure').getBoundingClientRect(), f = this.frame;
    const fx = (this.x[i] - this.x_range[0]) / (this.x_range[1] - this.x_range[0]);
    const fy = (this.y_range[1] - this.y[i]) / (this.y_range[1] - this.y_range[0]);
    return [r.left + window.scrollX + f.left + fx * f.width, r.top + window.scrollY + f.top + fy * f.height];
  }
});
</script>
{{ super() }}
{% endblock %}
"""


def write_listen_map(out_dir: str | os.PathLike, xy: np.ndarray, points: Sequence[MapPoint], previews: Sequence[str | None],
                     *, title: str, name: str = "map.html") -> Path:
    """Write the page to ``out_dir/name`` (previews already under ``out_dir/previews/``); returns its path."""
    page = Path(out_dir) / name
    page.parent.mkdir(parents=True, exist_ok=True)
    text = build_page(xy, points, previews, title=title).encode()
    atomic_write(page, lambda f: f.write(text)).chmod(0o644)
    return page


def log_listen_map(tracker, xy: np.ndarray, points: Sequence[MapPoint], load: Callable[[int], np.ndarray], *, title: str,
                   keys: Sequence[str] | None = None, cache_dir: str | os.PathLike | None = None, previews: bool = True,
                   seconds: float = 10.0, artifact_path: str = "listen_map", name: str = "tsne.html") -> int:
    """Build page + previews in a temporary folder and log the folder as ``artifact_path/`` of the run.

    The call the experiments make next to their PNG map; ``load(row)`` gives the row's 16-kHz audio.
    Rows whose audio cannot be read keep their dot (no preview) and are counted in a warning.
    Returns the number of previews written.
    """
    with tempfile.TemporaryDirectory(prefix="listen-map-") as d:
        if previews:
            rel, notes = write_previews(d, load, len(points), keys=keys, cache_dir=cache_dir, seconds=seconds)
            if notes:
                tracker.warn(f"{len(notes)} of {len(points)} songs have no preview in the listening map (first: {notes[0]})")
        else:
            rel = [None] * len(points)
        write_listen_map(d, xy, points, rel, title=title, name=name)
        tracker.log_artifact(d, artifact_path)
    return sum(1 for r in rel if r)
