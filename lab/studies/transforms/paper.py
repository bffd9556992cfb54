"""The transforms study's part of the paper document: Table 2 beside the study's, with the identity baseline."""

from __future__ import annotations

from omegaconf import DictConfig

from lab.stats.document import Figure, NamedTable, Section, Text
from lab.studies.transforms import report as table2_report

HEADINGS = {"table2": "Table 2: every map, held out (k-fold over songs) and in sample",
            "table2_vs_study": "Beside the study (its Table 2: Harmonic CNN on the full GTZAN)",
            "shift_direction": "Is a shift one direction in the space? (cosine to the mean shift, leave one out)",
            "shift_check": "The shifts as made: achieved tempo and pitch ratios"}

RUN = ("python -m lab experiment=transforms model=fcn,musicnn,crnn shift=pitch,tempo "
       "transform=identity,translation,uniform_scaling,nonuniform_scaling,scaled_orthogonal,affine dataset=gtzan "
       "dataset.root=../shared/music/gtzan_mini paths.weights=../shared/weights sweep_id={sweep} -m")


def table2(reader, cfg: DictConfig) -> Section:
    """Table 2: every transform's held-out and in-sample MSE / R² / NN accuracy, beside the study's."""
    s = Section("table-2", "Table 2: pitch and tempo as maps in the latent space", experiment="transforms",
                paper="The study's Table 2: can a simple map (translation, scaling, orthogonal, affine) carry a song's "
                      "embedding to the embedding of its pitch- or tempo-shifted version? Held out = k-fold over songs; "
                      "the identity row is the do-nothing baseline every map must beat.")
    runs = reader.runs("transforms")
    if not runs:
        return s.not_run(RUN, reader.sweep)
    rep = table2_report.report(runs, cfg=cfg, uri=reader.uri, sweep=reader.sweep)
    s.runs = runs
    s.add(Text(rep.summary + "."))
    for name, t in rep.tables.items():
        if not t.frame.empty:
            t.heading = t.heading or HEADINGS.get(name, "")
            s.add(NamedTable(name, t))
    for name, data in rep.files.items():
        if name.endswith(".png"):
            s.add(Figure(data, name.removesuffix(".png").replace("_", " ")))
    return s
