"""Linear probe: how much genre information is linearly readable from a tagger's song embeddings?

A standardiser plus multinomial logistic regression (scikit-learn) on the song embeddings, the
regularisation C chosen from ``experiment.Cs``:

- GTZAN with ``dataset.split=fault_filtered`` (Kereliuk, Sturm & Larsen): fit on the train part
  for every C, choose C by accuracy on the valid part (ties -> the smaller C, i.e. the stronger
  regularisation), refit on train with it, report accuracy on the test part.
- any other dataset: stratified k-fold (``experiment.folds``, shuffled with ``seed``); inside each
  training fold C is chosen by an inner stratified k-fold (``experiment.inner_folds``), so the
  reported accuracy never saw its test songs.

Logged: ``probe_accuracy`` (test accuracy, or the mean over outer folds), ``probe_accuracy_std``
(sample std over folds), ``probe_balanced_accuracy``, ``chance_accuracy`` (the majority label's
share), per-fold metrics (``fold_accuracy`` with ``step=fold``), the chosen C per fold
(``probe_folds.csv``), the whole C grid (``probe_grid.csv``), the predictions
(``probe_predictions.csv``) and a confusion matrix.
"""

from __future__ import annotations

import logging

import numpy as np
from hydra.utils import to_absolute_path
from omegaconf import DictConfig
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from lab.core.errors import LabError
from lab.datasets.gtzan import fault_filtered_split, split_of
from lab.extract.pipeline import load_embeddings
from lab.models.protocol import model_label
from lab.stats import genres as analysis
from lab.stats import metrics, plots

log = logging.getLogger(__name__)


def make_probe(C: float, *, max_iter: int, seed: int) -> Pipeline:
    """Standardise (per dimension, fitted on the training songs only) + logistic regression."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter, random_state=seed))


def validate(ex: DictConfig) -> tuple[list[float], int, int, int]:
    """Check the probe options; returns (Cs, folds, inner_folds, max_iter)."""
    Cs = [ex.Cs] if isinstance(ex.Cs, (int, float)) else list(ex.Cs)
    if not Cs or any(isinstance(c, bool) or not isinstance(c, (int, float)) or c <= 0 for c in Cs):
        raise LabError(f"experiment.Cs={list(Cs)!r} must be a non-empty list of positive numbers (inverse regularisation)")
    out = []
    for key, lo in (("folds", 2), ("inner_folds", 2), ("max_iter", 1)):
        v = ex[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise LabError(f"experiment.{key}={v!r} must be an integer >= {lo}")
        out.append(v)
    return [float(c) for c in Cs], *out


def _check_counts(y: np.ndarray, folds: int, what: str) -> None:
    labels, counts = np.unique(y, return_counts=True)
    if counts.min() < folds:
        raise LabError(f"{what}={folds} needs at least {folds} songs of every label, but {str(labels[counts.argmin()])!r} "
                       f"has {counts.min()}; lower it")


def fixed_split(X: np.ndarray, y: np.ndarray, part: np.ndarray, Cs: list[float], *, max_iter: int, seed: int):
    """Train on ``part == "train"``, choose C on ``"valid"``, test on ``"test"``.

    Returns the test mask, predictions [shape=(n,)] (filled on the test rows), the fold record and the C grid.
    """
    tr, va, te = (part == p for p in ("train", "valid", "test"))
    for name, sel in (("train", tr), ("valid", va), ("test", te)):
        if not sel.any():
            raise LabError(f"the fault-filtered {name} part holds none of the embedded songs; use dataset.split=all for k-fold")
    if len(set(y[tr])) < 2:
        raise LabError("the fault-filtered train part holds fewer than 2 labels; a probe cannot be fitted")
    grid = []
    for C in Cs:
        p = make_probe(C, max_iter=max_iter, seed=seed).fit(X[tr], y[tr])
        grid.append({"C": C, "train_accuracy": float(p.score(X[tr], y[tr])), "valid_accuracy": float(p.score(X[va], y[va]))})
    best = max(grid, key=lambda g: (g["valid_accuracy"], -g["C"]))  # ties: the stronger regularisation
    probe = make_probe(best["C"], max_iter=max_iter, seed=seed).fit(X[tr], y[tr])
    pred = np.full(len(y), "", dtype=object)  # rows aligned with y; only the test rows are predicted
    pred[te] = probe.predict(X[te])
    folds = [{"fold": 0, "C": best["C"], "n_train": int(tr.sum()), "n_valid": int(va.sum()), "n_test": int(te.sum()),
              "valid_accuracy": best["valid_accuracy"], "test_accuracy": float(np.mean(pred[te] == y[te]))}]
    return te, pred, folds, grid


def kfold(X: np.ndarray, y: np.ndarray, Cs: list[float], *, folds: int, inner_folds: int, max_iter: int, seed: int):
    """Stratified outer k-fold; C chosen by an inner stratified k-fold grid search in each training fold."""
    _check_counts(y, folds, "experiment.folds")
    outer = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    pred = np.empty(len(y), dtype=y.dtype)
    rows, grid = [], []
    for f, (tr, te) in enumerate(outer.split(X, y)):
        _check_counts(y[tr], inner_folds, "experiment.inner_folds")
        search = GridSearchCV(make_probe(1.0, max_iter=max_iter, seed=seed), {"logisticregression__C": Cs},
                              cv=StratifiedKFold(n_splits=inner_folds, shuffle=True, random_state=seed), n_jobs=1)
        search.fit(X[tr], y[tr])  # refits on the whole training fold with the chosen C
        pred[te] = search.predict(X[te])
        C = float(search.best_params_["logisticregression__C"])
        rows.append({"fold": f, "C": C, "n_train": len(tr), "n_test": len(te), "inner_cv_accuracy": float(search.best_score_),
                     "test_accuracy": float(np.mean(pred[te] == y[te]))})
        grid += [{"fold": f, "C": float(c), "inner_cv_accuracy": float(s)}
                 for c, s in zip(search.cv_results_["param_logisticregression__C"], search.cv_results_["mean_test_score"])]
    return np.ones(len(y), bool), pred, rows, grid


def run(cfg: DictConfig, tracker) -> dict[str, float]:
    """Fit and score the probe; log hyperparameters, accuracy, predictions and a confusion matrix."""
    ex = cfg.experiment
    Cs, n_folds, inner, max_iter = validate(ex)
    seed = int(cfg.seed)
    dataset, emb = load_embeddings(cfg, tracker)
    X, y, clips = np.asarray(emb.X, np.float64), np.asarray(emb.labels), emb.clips
    if len(set(y)) < 2:
        raise LabError(f"dataset={dataset.name} has {len(set(y))} label; a genre probe needs at least 2")
    fixed = cfg.dataset.get("name") == "gtzan" and cfg.dataset.get("split", "all") == "fault_filtered"
    if fixed:
        parts = fault_filtered_split(to_absolute_path(str(cfg.dataset.split_dir)))
        part = np.array([split_of(c.id, parts) or "" for c in clips])
        sel, pred, folds, grid = fixed_split(X, y, part, Cs, max_iter=max_iter, seed=seed)
        protocol = "fault_filtered: train / C on valid / test"
    else:
        sel, pred, folds, grid = kfold(X, y, Cs, folds=n_folds, inner_folds=inner, max_iter=max_iter, seed=seed)
        protocol = f"stratified {n_folds}-fold, C by inner {inner}-fold"
    acc = np.array([f["test_accuracy"] for f in folds])
    yt, yp = y[sel], pred[sel].astype(y.dtype)
    scores = {"probe_accuracy": float(np.mean(yp == yt)) if fixed else float(acc.mean()),
              "probe_accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else float("nan"),
              "probe_balanced_accuracy": float(balanced_accuracy_score(yt, yp)),
              "chance_accuracy": float(np.unique(yt, return_counts=True)[1].max() / len(yt)),
              "n_test": float(len(yt))}
    if not len(acc) > 1:
        del scores["probe_accuracy_std"]  # one test split: no spread to report, rather than a NaN
    tracker.set_tags({"probe_protocol": protocol, "probe_C": ",".join(f"{f['C']:g}" for f in folds)})
    tracker.log_metrics(scores)
    for f in folds:
        tracker.log_metrics({"fold_accuracy": f["test_accuracy"], "fold_C": f["C"]}, step=f["fold"])
    tracker.log_csv(folds, "probe_folds.csv")
    tracker.log_csv(grid, "probe_grid.csv")
    tracker.log_dict({"protocol": protocol, "Cs": Cs, "folds": n_folds, "inner_folds": inner, "max_iter": max_iter,
                      "seed": seed, "standardize": True, "model": "sklearn LogisticRegression (lbfgs, multinomial, L2)"},
                     "probe_hyperparameters.json")
    idx = np.flatnonzero(sel)
    tracker.log_csv([{"id": clips[i].id, "file": clips[i].path, "label": y[i], "predicted": pred[i], "correct": bool(pred[i] == y[i])}
                     for i in idx], "probe_predictions.csv")
    order = analysis.genre_order(X, y)  # every label, so predictions outside the test labels have a column
    cm, cols = metrics.confusion(yt, yp, order)
    who = model_label(cfg.model) + (f"@{cfg.model.corpus}" if cfg.model.get("corpus") else "") \
        + (" (random weights)" if cfg.model.get("pretrained", True) is False else "")
    what = f"linear probe, {who} on {dataset.name} ({len(yt)} test songs)"
    tracker.log_figure(plots.confusion_matrix(cm, order, cols, title=f"{what}\n{protocol}: accuracy {scores['probe_accuracy']:.3f}"),
                       "probe_confusion_matrix.png")
    log.info("%s, %s: accuracy %.3f (chance %.3f)", what, protocol, scores["probe_accuracy"], scores["chance_accuracy"])
    return scores
