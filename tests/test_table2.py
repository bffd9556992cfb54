"""Table 2 rendering from run records: layout, the study's values beside ours, the verdict, the amount figure."""

from __future__ import annotations

import numpy as np

from lab.studies.transforms import maps as T
from lab.studies.transforms import report as table2


def _runs() -> list[dict]:
    """Real metrics from lab.studies.transforms.maps on synthetic pairs, wrapped as MLflow-like run records."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 40))
    runs = []
    for kind in ("pitch", "tempo"):
        for amount in (0.75, 1.0, 1.5):
            Y = X * amount + 0.5 + 0.4 * rng.normal(size=X.shape)
            for name in T.FITTERS:
                m = T.cross_validate(name, X, Y, k=5, seed=0) | T.shift_direction(X, Y)
                m |= {"n_pairs": 30.0, "n_params": float(T.n_parameters(name, 40)),
                      "achieved_tempo_ratio_median": 1.0, "achieved_tempo_ratio_p10": 0.99, "achieved_tempo_ratio_p90": 1.01,
                      "achieved_pitch_ratio_median": amount, "achieved_pitch_ratio_p10": amount, "achieved_pitch_ratio_p90": amount}
                runs.append({"status": "FINISHED", "metrics": m,
                             "tags": {"model": "fcn", "dataset": "synth", "transform": name, "shift_kind": kind,
                                      "shift_amount": f"{amount:g}", "shift_backend": "rubberband-x", "shift_length": "loop"}})
    runs.append({"status": "FAILED", "metrics": {}, "tags": {"transform": "affine"}})
    return runs


def test_table2_files_and_verdict(tmp_path):
    df = table2.runs_frame(_runs())
    assert len(df) == 2 * 3 * 6  # the failed run is left out
    t = table2.table2(df)
    assert len(t) == 2 * 6 and list(t.Transform[:2]) == ["Identity", "Translation"]
    vs, sentence = table2.versus_study(df)
    assert vs.loc[vs.Transform == "Affine", "MSE (study)"].iloc[0] == "8.7669"
    # 40 dims, 24 training songs per fold: affine interpolates in sample and over-fits held out.
    assert "in 0 of 2" in sentence and "held-out evaluation" in sentence
    paths = table2.write(df, tmp_path)
    assert {"table2.md", "table2.csv", "table2.tex", "table2_vs_study.md", "shift_direction.md", "shift_check.md",
            "transform_vs_amount_fcn.png"} <= set(paths)
    assert "Scaled orthogonal" in (tmp_path / "table2.md").read_text()
    assert (tmp_path / "transform_vs_amount_fcn.png").stat().st_size > 10_000
