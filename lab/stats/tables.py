"""Writing tables: Markdown, LaTeX and CSV, model display names, and what a study's report returns.

Knows no study. Each study's ``report(runs, *, cfg, uri, sweep)`` (named by ``experiment.report``
in ``conf/experiment/<study>.yaml``) builds a :class:`StudyReport` from its sweep's MLflow runs;
``python -m lab.report`` writes it with :func:`write_report`, prints it and logs it as one summary
run. Adding a study never edits this module or the report command.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

# How tables name the models (the study's spelling); a model not listed is shown by its config name.
MODEL_NAMES = {"fcn": "FCN", "musicnn": "Musicnn", "crnn": "CRNN", "attention": "Attention", "hcnn": "HCNN",
               "sample": "Sample level", "se": "Sample level SE"}
# Other models the lab ships (shown after the study's taggers) and the baselines (shown after every
# trained model, so "how much do the taggers add?" reads down one block).
OTHER_NAMES = {"musicnn_tf": "Musicnn, Pons' package"}
BASELINE_NAMES = {"handcrafted": "Handcrafted (MFCC etc.)"}
CORPUS_NAMES = {"mtat": "MTAT", "msd": "MSD", "jamendo": "Jamendo"}
DEFAULT_CORPUS = "jamendo"
RANDOM = "random"  # row-key qualifier of a random-weights run (tag pretrained=false)


def row_key(model: str | None, *, corpus: str | None = None, pretrained: str | None = None) -> str | None:
    """The table row of a run from its tags: ``fcn``, ``fcn@mtat``, ``fcn@random``, ``fcn@mtat@random``.

    Runs of one model with other training corpora or random weights are different rows (never averaged).
    """
    if model is None:
        return None
    key = model + (f"@{corpus}" if corpus and corpus != DEFAULT_CORPUS else "")
    return key + (f"@{RANDOM}" if str(pretrained).lower() == "false" else "")


def _parts(key: str) -> tuple[str, str | None, bool]:
    base, *quals = str(key).split("@")
    random = RANDOM in quals
    corpus = next((q for q in quals if q != RANDOM), None)
    return base, corpus, random


def model_name(model: str) -> str:
    """The display name of a row key (``fcn`` -> ``FCN``, ``fcn@random`` -> ``FCN (random)``,
    ``fcn@mtat`` -> ``FCN (MTAT)``, ``handcrafted`` -> ``Handcrafted (MFCC etc.)``); unknown names as they are."""
    base, corpus, random = _parts(model)
    name = MODEL_NAMES.get(base) or OTHER_NAMES.get(base) or BASELINE_NAMES.get(base) or base
    quals = ([CORPUS_NAMES.get(corpus, corpus)] if corpus else []) + (["random"] if random else [])
    return f"{name} ({', '.join(quals)})" if quals else name


def run_label(tags: dict[str, str]) -> str:
    """How a run's model is named in tables: ``FCN``, ``FCN (MSD)``, ``FCN (random)`` — from its MLflow tags.

    Runs of one architecture trained on another corpus, or with random weights, are other models
    and must never be averaged into the same cell.
    """
    return model_name(row_key(tags.get("model", "?"), corpus=tags.get("corpus"), pretrained=tags.get("pretrained")))


def model_order(models) -> list[str]:
    """Row keys in the study's order (its Table 1) — trained taggers, other trained models by name —,
    then the baselines: the handcrafted features, then the random-weights rows."""
    models = [m for m in dict.fromkeys(models) if m is not None and not (isinstance(m, float) and m != m)]
    tagger_rank = {m: i for i, m in enumerate(MODEL_NAMES)}
    # in CORPUS_NAMES' order: a set here would order MTAT and MSD by the process's string hash
    corpus_rank = {c: i for i, c in enumerate(c for c in CORPUS_NAMES if c != DEFAULT_CORPUS)}

    def rank(key: str) -> tuple:
        base, corpus, random = _parts(key)
        group = 3 if random else 2 if base in BASELINE_NAMES else 0 if base in tagger_rank else 1
        return (group, tagger_rank.get(base, len(tagger_rank)), base, -1 if corpus is None else corpus_rank.get(corpus, 99), corpus or "")

    return sorted(models, key=rank)


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no optional ``tabulate`` dependency)."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def to_latex(df: pd.DataFrame) -> str:
    """A booktabs tabular; the first column is written once per block, as in the study's tables."""
    esc = lambda v: str(v).replace("&", r"\&").replace("#", r"\#").replace("%", r"\%").replace("_", r"\_")  # noqa: E731
    lines = [r"\begin{tabular}{" + "l" * len(df.columns) + "}", r"\toprule",
             " & ".join(esc(c) for c in df.columns) + r" \\", r"\midrule"]
    prev = None
    for row in df.itertuples(index=False):
        cells = [esc(v) for v in row]
        if cells[0] == prev:
            cells[0] = ""
        else:
            if prev is not None:
                lines.append(r"\midrule")
            prev = cells[0]
        lines.append(" & ".join(cells) + r" \\")
    return "\n".join(lines + [r"\bottomrule", r"\end{tabular}"]) + "\n"


@dataclass
class Table:
    """One table of a report: shown as Markdown (and LaTeX), stored as CSV.

    ``numbers`` is the CSV's numeric form when the shown frame holds formatted text (e.g.
    ``0.611 (0.0003)``); ``footer`` is Markdown printed under the table (a verdict sentence).
    """

    frame: pd.DataFrame
    heading: str = ""
    numbers: pd.DataFrame | None = None
    latex: bool = False
    footer: str = ""
    csv: bool = True


@dataclass
class StudyReport:
    """What a study's ``report(...)`` returns; ``key`` names its summary run (``<key>-<sweep id>``).

    ``tables`` are written as ``<name>.md`` / ``.csv`` (/ ``.tex``) in order; ``shown`` lists the
    tables printed to the terminal (default: all); ``files`` are extra files (figures) by name.
    """

    key: str
    summary: str
    tables: dict[str, Table] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    shown: list[str] | None = None
    n_runs: int = 0
    source_experiment: str = ""


def write_report(rep: StudyReport, out: Path) -> dict[str, Path]:
    """Write every table of ``rep`` (Markdown, CSV, LaTeX where asked) and its files to ``out``; name -> path."""
    out.mkdir(parents=True, exist_ok=True)
    texts: dict[str, str | bytes] = {}
    for name, t in rep.tables.items():
        if t.frame.empty:
            continue
        texts[f"{name}.md"] = to_markdown(t.frame) + (f"\n{t.footer}\n" if t.footer else "")
        if t.csv:
            texts[f"{name}.csv"] = (t.numbers if t.numbers is not None else t.frame).to_csv(index=False)
        if t.latex:
            texts[f"{name}.tex"] = to_latex(t.frame)
    texts |= rep.files
    paths = {}
    for name, body in texts.items():
        p = out / name
        if isinstance(body, bytes):
            p.write_bytes(body)
        else:
            p.write_text(body if body.endswith("\n") else body + "\n")
        paths[name] = p
    return paths
