"""The out-of-domain study's part of the paper document: Figure 5, the joint map and its numbers."""

from __future__ import annotations

from omegaconf import DictConfig

from lab.stats.document import Figure, NamedTable, Section
from lab.stats.tables import Table, run_label
from lab.studies.out_of_domain.report import report_table

RUN = ("python -m lab experiment=out_of_domain model=fcn,musicnn,crnn dataset=gtzan dataset.root=../shared/music/gtzan_mini "
       "paths.weights=../shared/weights +ood.carnatic=../shared/music/carnatic sweep_id={sweep} -m")


def figure5(reader, cfg: DictConfig) -> Section:
    """Figure 5: where music from outside the training domain lands among the reference genres."""
    s = Section("figure-5", "Figure 5: music beyond the training domain", experiment="out_of_domain",
                paper="The study's Figure 5: Carnatic music forms its own cluster, Gaana lands near reggae and hip-hop, "
                      "and Carnatic-rock fusion between its parents. Here each reading is a number computed in the "
                      "embedding space (silhouette and kNN self-share against permutation nulls, nearest genres with "
                      "their bootstrap stability, the fusion's position between its parents).")
    runs = reader.runs("out_of_domain")
    if not runs:
        return s.not_run(RUN, reader.sweep)
    s.runs = runs
    for run in runs:
        png = reader.bytes(run, "tsne.png")
        if png is not None:
            s.add(Figure(png, f"{run_label(run['tags'])}: t-SNE of the reference genres and the new sets "
                              f"({run['tags'].get('ood_sets', '')})"))
    table = report_table(runs)
    if not table.empty:
        s.add(NamedTable("out_of_domain", Table(table, heading="Placement of each set (genres' mean in brackets)")))
    return s
