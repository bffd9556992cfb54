"""The similarity study's part of the paper document: how alike the taggers' latent spaces are (CKA)."""

from __future__ import annotations

import io

import pandas as pd
from omegaconf import DictConfig

from lab.stats.document import Figure, NamedTable, Section
from lab.stats.tables import Table

RUN = ("python -m lab experiment=similarity dataset=gtzan dataset.root=../shared/music/gtzan_mini "
       "paths.weights=../shared/weights sweep_id={sweep}")


def cka(reader, cfg: DictConfig) -> Section:
    """Beyond the paper: the similarity matrix of every measure the sweep computed, with intervals and chance level."""
    s = Section("similarity", "How alike are the latent spaces?", experiment="similarity",
                paper="Not in the study: linear CKA between every pair of taggers (and training corpora) on the same "
                      "songs, with a bootstrap interval over songs and the chance level of shuffled pairings.")
    runs = reader.runs("similarity")
    if not runs:
        return s.not_run(RUN, reader.sweep)
    run = runs[-1]
    s.runs = [run]
    for measure in filter(None, run["tags"].get("measures", "linear_cka").split(",")):
        png = reader.bytes(run, f"{measure}.png")
        if png is not None:
            s.add(Figure(png, f"{measure.replace('_', ' ')} on {run['tags'].get('n_songs', '?')} songs"))
        text = reader.text(run, f"{measure}.csv")
        if text:
            df = pd.read_csv(io.StringIO(text))
            df = df[df.model_a != df.model_b]
            s.add(NamedTable(f"similarity_{measure}", Table(df.reset_index(drop=True), heading=f"{measure}: pairs")))
    return s
