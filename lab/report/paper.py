"""The whole study as one document: every table and figure of the paper, regenerated from a sweep's runs.

    python -m lab.report --paper                      # the latest sweep of the default store
    python -m lab.report --paper --sweep-id ID --out reports/mine

Writes, to ``--out`` (default ``reports/<sweep id>/``):

* ``paper.html`` — one self-contained page (images and audio inline, no network), in the paper's
  order: Figures 1-3 and Table 1 (clustering), Table 2 (transforms), Figure 4 (dream), Figure 5
  (out of domain), then what the paper does not have (paired comparisons, training corpus, CKA,
  linear probe). Each part says which runs it came from (ids, sweep, git commit, dataset digest),
  or, when the sweep has none, what to run to fill it;
* ``paper.md`` with its images and audio in ``paper_files/`` (for a repository or a PR comment);
* every table as ``<name>.csv`` (and ``.tex`` for Tables 1 and 2);
* ``listen_map_<model>/`` — the listening pages Figure 1 links to, copied beside the page.

The page, its Markdown and tables are logged as one summary run per sweep in the MLflow experiment
``report`` (``paper-<sweep id>``); re-running on the same store changes nothing (no timestamps in
the files, the summary run is left alone). The section builders live in each study's ``paper.py``;
this module only orders them and writes the document.
"""

from __future__ import annotations

import base64
import html
import re
import shutil
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig

from lab.core.errors import LabError
from lab.stats.document import Audio, Figure, NamedTable, Section, Text, provenance
from lab.stats.tables import to_latex, to_markdown
from lab.studies.clustering import paper as clustering
from lab.studies.dream import paper as dream
from lab.studies.out_of_domain import paper as out_of_domain
from lab.studies.probe import paper as probe
from lab.studies.similarity import paper as similarity
from lab.studies.transforms import paper as transforms

# The paper's order, then what it does not have. (experiment whose config the builder reads, builder)
SECTIONS: list[tuple[str, Callable]] = [
    ("clustering", clustering.figure1),
    ("cluster_scores", clustering.figure2),
    ("clustering", clustering.table1),
    ("clustering", clustering.figure3),
    ("transforms", transforms.table2),
    ("dream", dream.figure4),
    ("out_of_domain", out_of_domain.figure5),
]
BEYOND: list[tuple[str, Callable]] = [
    ("clustering", clustering.comparisons),
    ("clustering", clustering.corpus),
    ("similarity", similarity.cka),
    ("probe", probe.probe),
]
EXPERIMENTS = sorted({e for e, _ in SECTIONS + BEYOND})
TITLE = "Latent Space Shenanigans, regenerated"


def build(reader, configs: Callable[[str], DictConfig]) -> tuple[list[Section], list[Section]]:
    """(the paper's sections, the sections beyond it) of the sweep ``reader`` reads; ``configs(experiment)`` composes."""
    def one(experiment: str, builder: Callable) -> Section:
        try:
            return builder(reader, configs(experiment))
        except LabError as err:  # one part that cannot be built must not cost the others
            name = builder.__name__.replace("_", " ")
            return Section(name.replace(" ", "-"), name.capitalize(), experiment=experiment,
                           missing=f"This part could not be built from sweep {reader.sweep}: {err}")
    return [one(e, b) for e, b in SECTIONS], [one(e, b) for e, b in BEYOND]


# ---- HTML ---------------------------------------------------------------------------------------

CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.7em; margin-bottom: .2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
h3 { font-size: 1.05em; margin: 1.2em 0 .4em; }
.meta, .provenance { color: #555; font-size: .85em; } .provenance { border-left: 3px solid #ccc; padding-left: .6em; }
.paper { font-style: italic; color: #333; }
.missing { background: #fff6e0; border: 1px solid #e8c66a; padding: .6em .8em; border-radius: 4px; }
table { border-collapse: collapse; font-size: .85em; margin: .4em 0 1em; display: block; overflow-x: auto; }
th, td { border: 1px solid #ddd; padding: .25em .5em; text-align: left; white-space: nowrap; } th { background: #f4f4f4; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; } figcaption { font-size: .85em; color: #444; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 1em; } .grid figure { margin: 0; }
audio { width: 100%; max-width: 600px; } code { background: #f4f4f4; padding: 0 .2em; font-size: .9em; }
nav ol { columns: 2; font-size: .9em; }
"""


def _inline(text: str) -> str:
    """Escape ``text``; `code` and **bold** become markup (the only formatting section texts use)."""
    out = html.escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _provenance_line(s: Section, sweep: str) -> str:
    p = provenance(s.runs, sweep=sweep, experiment=s.experiment)
    ids = p["run_ids"]
    shown = ", ".join(i[:8] for i in ids[:12]) + (f" and {len(ids) - 12} more" if len(ids) > 12 else "")
    return (f"From {p['n_runs']} run{'s' if p['n_runs'] != 1 else ''} of experiment <code>{html.escape(p['experiment'])}</code> "
            f"in sweep <code>{html.escape(sweep)}</code>: {html.escape(shown)}; git commit "
            f"{', '.join(f'<code>{html.escape(c[:12])}</code>' for c in p['git_commits'])}; dataset "
            f"{html.escape(', '.join(p['datasets']) or '?')} (digest {html.escape(', '.join(p['dataset_digests']) or '?')}).")


def _section_html(s: Section, sweep: str) -> str:
    parts = [f'<section id="{s.key}">', f"<h2>{html.escape(s.title)}</h2>"]
    if s.paper:
        parts.append(f'<p class="paper">{_inline(s.paper)}</p>')
    if s.missing:
        parts.append(f'<p class="missing">{_inline(s.missing)}</p>')
    # Consecutive figures (one map per model; a spectrogram and its loss curve) sit side by side.
    is_fig = [isinstance(b, Figure) for b in s.blocks]
    opens = {i for i in range(len(is_fig) - 1) if is_fig[i] and is_fig[i + 1] and (i == 0 or not is_fig[i - 1])}
    closes = {i for i in range(1, len(is_fig)) if is_fig[i] and is_fig[i - 1] and (i == len(is_fig) - 1 or not is_fig[i + 1])}
    for i, b in enumerate(s.blocks):
        if i in opens:
            parts.append('<div class="grid">')
        if isinstance(b, Text):
            parts.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, NamedTable):
            t = b.table
            if t.heading:
                parts.append(f"<h3>{_inline(t.heading)}</h3>")
            parts.append(t.frame.to_html(index=False, border=0, na_rep="–", escape=True))
            if t.footer:
                parts.append(f"<p>{_inline(t.footer)}</p>")
        elif isinstance(b, Figure):
            link = f' — <a href="{html.escape(b.link)}">{html.escape(b.link_text or b.link)}</a>' if b.link else ""
            parts.append(f'<figure><img src="{_data_uri(b.png, "image/png")}" alt="{html.escape(b.caption)}">'
                         f"<figcaption>{_inline(b.caption)}{link}</figcaption></figure>")
        elif isinstance(b, Audio):
            parts.append(f'<figure><audio controls preload="metadata" src="{_data_uri(b.data, b.mime)}"></audio>'
                         f"<figcaption>{_inline(b.caption)}</figcaption></figure>")
        if i in closes:
            parts.append("</div>")
    if s.runs:
        parts.append(f'<p class="provenance">{_provenance_line(s, sweep)}</p>')
    parts.append("</section>")
    return "\n".join(parts)


def render_html(paper: list[Section], beyond: list[Section], *, sweep: str, uri: str) -> str:
    """The self-contained page: inline CSS, images and audio as data URIs, no script, no network."""
    toc = "".join(f'<li><a href="#{s.key}">{html.escape(s.title)}</a>{" (not run yet)" if s.missing else ""}</li>'
                  for s in paper + beyond)
    datasets = sorted({d for s in paper + beyond for d in provenance(s.runs, sweep=sweep, experiment="")["datasets"]})
    body = [f"<h1>{TITLE}</h1>",
            f'<p class="meta">Sweep <code>{html.escape(sweep)}</code> of <code>{html.escape(uri)}</code>; dataset '
            f"{html.escape(', '.join(datasets) or '?')}. Every table and figure below is rebuilt from the sweep's MLflow runs "
            f"by <code>python -m lab.report --paper --sweep-id {html.escape(sweep)}</code>, beside the numbers of "
            f"the study (Richards Ravi Arputharaj &amp; Kalaivanan, KTH) where it has them.</p>",
            f"<nav><ol>{toc}</ol></nav>"]
    body += [_section_html(s, sweep) for s in paper]
    body.append('<h2 id="beyond" style="border:none">Beyond the paper</h2>')
    body += [_section_html(s, sweep) for s in beyond]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{TITLE}: {html.escape(sweep)}</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


# ---- Markdown -------------------------------------------------------------------------------------

def render_markdown(paper: list[Section], beyond: list[Section], *, sweep: str, uri: str,
                    files_dir: str = "paper_files") -> tuple[str, dict[str, bytes]]:
    """The same document in Markdown; images and audio become files under ``files_dir`` (returned by name)."""
    files: dict[str, bytes] = {}
    md = [f"# {TITLE}", "", f"Sweep `{sweep}` of `{uri}`, rebuilt by `python -m lab.report --paper --sweep-id {sweep}`.", ""]

    def section(s: Section) -> None:
        md.extend([f"## {s.title}", ""])
        if s.paper:
            md.extend([f"*{s.paper}*", ""])
        if s.missing:
            md.extend([f"> {s.missing}", ""])
        for i, b in enumerate(s.blocks):
            if isinstance(b, Text):
                md.extend([b.text, ""])
            elif isinstance(b, NamedTable):
                if b.table.heading:
                    md.extend([f"**{b.table.heading}**", ""])
                md.append(to_markdown(b.table.frame))
                if b.table.footer:
                    md.extend([b.table.footer, ""])
            elif isinstance(b, Figure):
                name = f"{files_dir}/{s.key}-{i}.png"
                files[name] = b.png
                md.extend([f"![{b.caption}]({name})", "", f"*{b.caption}*" + (f" — [{b.link_text or b.link}]({b.link})" if b.link else ""), ""])
            elif isinstance(b, Audio):
                name = f"{files_dir}/{s.key}-{i}.{b.mime.split('/')[-1]}"
                files[name] = b.data
                md.extend([f"[▶ {b.caption}]({name})", ""])
        if s.runs:
            p = provenance(s.runs, sweep=sweep, experiment=s.experiment)
            md.extend([f"<sub>From {p['n_runs']} run(s) of `{p['experiment']}` in sweep `{sweep}`; git "
                       f"{', '.join(c[:12] for c in p['git_commits'])}; dataset digest {', '.join(p['dataset_digests']) or '?'}.</sub>", ""])

    for s in paper:
        section(s)
    md.extend(["## Beyond the paper", ""])
    for s in beyond:
        section(s)
    return "\n".join(md).rstrip() + "\n", files


def write(paper: list[Section], beyond: list[Section], out: Path, *, sweep: str, uri: str) -> dict[str, Path]:
    """Write the page, its Markdown (+ files), every table as CSV/LaTeX and the linked folders; name -> path."""
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}

    def put(name: str, data: str | bytes) -> None:
        p = out / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())
        written[name] = p

    put("paper.html", render_html(paper, beyond, sweep=sweep, uri=uri))
    text, files = render_markdown(paper, beyond, sweep=sweep, uri=uri)
    put("paper.md", text)
    for name, data in files.items():
        put(name, data)
    for s in paper + beyond:
        for b in s.blocks:
            if isinstance(b, NamedTable) and not b.table.frame.empty:
                put(f"{b.name}.csv", (b.table.numbers if b.table.numbers is not None else b.table.frame).to_csv(index=False))
                if b.table.latex:
                    put(f"{b.name}.tex", to_latex(b.table.frame))
        for name, folder in s.folders.items():
            dest = out / name
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(folder, dest)
    return written
