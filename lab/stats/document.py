"""What a section of a study document holds: text, tables, figures, audio, and the runs it came from.

Knows no study and no output format. Each study's ``paper.py`` turns a sweep's runs into
:class:`Section` objects; ``python -m lab.report --paper`` (:mod:`lab.report.paper`) puts them in
the paper's order and writes them as one self-contained HTML page and as Markdown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from lab.stats.tables import Table


@dataclass
class Text:
    """A paragraph. ``code`` spans in backticks and **bold** are rendered; nothing else is markup."""

    text: str


@dataclass
class Figure:
    """A PNG with its caption; ``link`` is a file beside the report (e.g. a listening page) shown under it."""

    png: bytes
    caption: str
    link: str | None = None
    link_text: str = ""


@dataclass
class Audio:
    """A sound to play in the page (``mime`` e.g. ``audio/ogg``), with its caption."""

    data: bytes
    mime: str
    caption: str


@dataclass
class NamedTable:
    """A table that is also written beside the report as ``<name>.csv`` (and ``.tex`` where ``table.latex``)."""

    name: str
    table: Table


Block = Union[Text, Figure, Audio, NamedTable]


@dataclass
class Section:
    """One part of the document, e.g. "Figure 1" or "Table 2".

    ``runs`` are the MLflow runs (dicts of :func:`lab.tracking.sweep_runs`) it was built from, for
    its provenance line; ``missing`` replaces the content with what to run when there are none.
    ``folders`` are folders to copy beside the report (relative name -> local folder), e.g. the
    listening maps a figure links to.
    """

    key: str
    title: str
    paper: str = ""
    blocks: list[Block] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    experiment: str = ""
    missing: str | None = None
    folders: dict[str, Path] = field(default_factory=dict)

    def add(self, *blocks: Block) -> "Section":
        self.blocks.extend(blocks)
        return self

    def not_run(self, command: str, sweep: str) -> "Section":
        """Mark the part as not yet run: ``command`` (with ``{sweep}`` for the sweep id) is what fills it."""
        self.missing = f"No runs of this part in sweep {sweep} yet: run `{command.format(sweep=sweep)}` to fill it."
        return self


def provenance(runs: list[dict[str, Any]], *, sweep: str, experiment: str) -> dict[str, Any]:
    """What a section came from: run ids, sweep id, git commits and dataset digests of ``runs``."""
    commits = sorted({r["tags"].get("git_commit", "unknown") for r in runs})
    digests = sorted({d for r in runs if (d := r.get("dataset_digest"))})
    datasets = sorted({r["tags"]["dataset"] for r in runs if r["tags"].get("dataset")})
    return {"experiment": experiment, "sweep": sweep, "n_runs": len(runs), "run_ids": [r["run_id"] for r in runs],
            "git_commits": commits, "dataset_digests": digests, "datasets": datasets}
