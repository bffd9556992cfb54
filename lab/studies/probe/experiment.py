"""Linear probe: how much genre information is linearly readable from a tagger's song embeddings?

A standardiser plus multinomial logistic regression (scikit-learn) on the song embeddings, the
regularisation C chosen from ``experiment.Cs``:

- GTZAN with ``dataset.split=fault_filtered`` (Kereliuk, Sturm & Larsen): fit on the train part
  for every C, choose C by accuracy on the valid part (ties -> the smaller C, i.e. the stronger
  regularisation), refit on train with it, report accuracy on the test part.
- any other dataset: k-fold (``experiment.folds``, shuffled with ``seed``) that never splits a
  group (``experiment.group``: ``artist`` = the artist where known, else the recording; ``recording``
  = every recording its own group, the earlier protocol), stratified by genre as far as the groups
  allow (``StratifiedGroupKFold``; ``StratifiedKFold`` for ``recording``, exactly as before); inside
  each training fold C is chosen by an inner k-fold of the same kind (``experiment.inner_folds``),
  so the reported accuracy never saw its test songs, nor, with ``artist``, their artists.

With ``artist`` a genre whose songs are all one artist (in ``gtzan_mini``: blues, classical,
reggae, rock) sits in a single test fold and is never in training when scored: it cannot be
predicted, and the run warns. That is what the data can say about those genres apart from their
artist. ``probe_accuracy_multi`` is the accuracy on the genres with at least two groups.

Logged: ``probe_accuracy`` (test accuracy, or the accuracy of the pooled out-of-fold predictions;
with equal folds the mean over folds), ``probe_accuracy_ci_lo``/``_hi`` (bootstrap over the same
groups of the pooled out-of-fold predictions, BCa, conditional on the fitted probes),
``probe_accuracy_std`` (sample std over folds), ``probe_balanced_accuracy``, ``chance_accuracy``
(the majority label's share), per-fold metrics (``fold_accuracy`` with ``step=fold``), the chosen C
per fold (``probe_folds.csv``), the whole C grid (``probe_grid.csv``), the predictions
(``probe_predictions.csv``, with each song's group and fold) and a confusion matrix.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
from hydra.utils import to_absolute_path
from omegaconf import DictConfig
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from lab.core.errors import LabError
from lab.datasets import GROUP_UNITS, clip_groups
from lab.datasets.gtzan import fault_filtered_split, split_of
from lab.extract.pipeline import load_embeddings
from lab.models.protocol import model_label
from lab.stats import genres as analysis
from lab.stats import metrics, plots, uncertainty

log = logging.getLogger(__name__)


def make_probe(C: float, *, max_iter: int, seed: int) -> Pipeline:
    """Standardise (per dimension, fitted on the training songs only) + logistic regression."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter, random_state=seed))


def validate(ex: DictConfig) -> tuple[list[float], int, int, int]:
    """Check the probe options; returns (Cs, folds, inner_folds, max_iter). ``group`` is checked too."""
    if ex.get("group", "artist") not in GROUP_UNITS:
        raise LabError(f"experiment.group={ex.get('group')!r} must be one of {', '.join(GROUP_UNITS)} (the unit folds never split)")
    boot = ex.get("bootstrap") or {}
    if boot.get("n_boot", 1000) != 0:
        uncertainty.validate(boot.get("n_boot", 1000), boot.get("level", 0.95))
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


def _splitter(folds: int, seed: int, grouped: bool):
    if grouped:
        return StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)


def _check_groups(groups: np.ndarray, folds: int, what: str) -> None:
    n = len(set(groups.tolist()))
    if n < folds:
        raise LabError(f"{what}={folds} needs at least {folds} groups (artists or recordings), but these songs have {n}; lower it")


def kfold(X: np.ndarray, y: np.ndarray, Cs: list[float], *, folds: int, inner_folds: int, max_iter: int, seed: int,
          groups: np.ndarray | None = None):
    """Outer k-fold, C chosen by an inner k-fold grid search in each training fold.

    ``groups`` [shape=(n,)]: folds never split a group and are stratified by ``y`` as far as the
    groups allow (``StratifiedGroupKFold``); None: stratified k-fold over songs (``StratifiedKFold``).
    Returns (all-true mask, out-of-fold predictions [shape=(n,)], fold records, C grid, fold of each song).
    """
    grouped = groups is not None
    if grouped:
        groups = np.asarray(groups, dtype=object).astype(str)
        _check_groups(groups, folds, "experiment.folds")
    else:
        _check_counts(y, folds, "experiment.folds")
    pred = np.empty(len(y), dtype=y.dtype)
    fold_of = np.full(len(y), -1)
    rows, grid = [], []
    try:
        split = list(_splitter(folds, seed, grouped).split(X, y, groups) if grouped else _splitter(folds, seed, False).split(X, y))
    except ValueError as err:  # scikit-learn's own check of the class sizes
        raise LabError(f"experiment.folds={folds} cannot split these songs ({err})") from None
    for f, (tr, te) in enumerate(split):
        if grouped:
            _check_groups(groups[tr], inner_folds, "experiment.inner_folds")
        else:
            _check_counts(y[tr], inner_folds, "experiment.inner_folds")
        if len(set(y[tr].tolist())) < 2:
            raise LabError(f"outer fold {f} trains on a single genre; with experiment.group=artist these songs have too few "
                           f"artists per genre for experiment.folds={folds} (lower it or use experiment.group=recording)")
        search = GridSearchCV(make_probe(1.0, max_iter=max_iter, seed=seed), {"logisticregression__C": Cs},
                              cv=_splitter(inner_folds, seed, grouped), n_jobs=1)
        with warnings.catch_warnings():
            # inner folds missing a genre (grouped CV on few artists) are expected: they score what they can
            warnings.simplefilter("ignore", UserWarning)
            search.fit(X[tr], y[tr], **({"groups": groups[tr]} if grouped else {}))  # refits on the whole training fold
        pred[te] = search.predict(X[te])
        fold_of[te] = f
        C = float(search.best_params_["logisticregression__C"])
        rows.append({"fold": f, "C": C, "n_train": len(tr), "n_test": len(te), "inner_cv_accuracy": float(search.best_score_),
                     "test_accuracy": float(np.mean(pred[te] == y[te])),
                     "test_genres_unseen": int(len(set(y[te].tolist()) - set(y[tr].tolist())))})
        grid += [{"fold": f, "C": float(c), "inner_cv_accuracy": float(s)}
                 for c, s in zip(search.cv_results_["param_logisticregression__C"], search.cv_results_["mean_test_score"])]
    return np.ones(len(y), bool), pred, rows, grid, fold_of


def single_group_labels(y: np.ndarray, groups: np.ndarray) -> list[str]:
    """Labels all of whose songs share one group: never in training when scored under grouped CV."""
    return sorted(str(lab) for lab in set(y.tolist()) if len(set(groups[y == lab].tolist())) == 1)


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
    unit = str(ex.get("group", "artist"))
    groups = clip_groups(clips, unit)
    fold_of = np.full(len(y), -1)
    if fixed:
        fold_of[sel] = 0
    else:
        grouped = unit == "artist"
        if grouped and (alone := single_group_labels(y, groups)):
            tracker.warn(f"{len(alone)} genre(s) are a single artist here ({', '.join(alone)}): with experiment.group=artist "
                         f"their songs are never in training when tested, so the probe cannot get them right")
        sel, pred, folds, grid, fold_of = kfold(X, y, Cs, folds=n_folds, inner_folds=inner, max_iter=max_iter, seed=seed,
                                                groups=groups if grouped else None)
        protocol = (f"{n_folds}-fold over artists (never split, stratified by genre as far as they allow), C by inner {inner}-fold"
                    if grouped else f"stratified {n_folds}-fold, C by inner {inner}-fold")
    acc = np.array([f["test_accuracy"] for f in folds])
    yt, yp = y[sel], pred[sel].astype(y.dtype)
    # grouped folds differ in size: the pooled out-of-fold accuracy, not the mean over folds, is the share of songs right
    pooled = unit == "artist" and not fixed
    with warnings.catch_warnings():
        # the fault-filtered test set lacks some genres the probe may still predict; the balanced
        # accuracy is the mean recall over the genres that are there, which is what it should be
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        balanced = float(balanced_accuracy_score(yt, yp))
    scores = {"probe_accuracy": float(np.mean(yp == yt)) if fixed or pooled else float(acc.mean()),
              "probe_accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else float("nan"),
              "probe_balanced_accuracy": balanced,
              "chance_accuracy": float(np.unique(yt, return_counts=True)[1].max() / len(yt)),
              "n_test": float(len(yt))}
    if not len(acc) > 1:
        del scores["probe_accuracy_std"]  # one test split: no spread to report, rather than a NaN
    multi = ~np.isin(yt, single_group_labels(y, groups)) if unit == "artist" else np.ones(len(yt), bool)
    if unit == "artist" and multi.any() and not multi.all():
        scores["probe_accuracy_multi"] = float(np.mean(yp[multi] == yt[multi]))
    boot = ex.get("bootstrap") or {}
    if int(boot.get("n_boot", 1000)) > 0:
        iv = uncertainty.bootstrap_mean((yp == yt).astype(float), groups[sel], n_boot=int(boot.get("n_boot", 1000)),
                                        seed=int(boot.get("seed", 0)), level=float(boot.get("level", 0.95)))
        scores |= {"probe_accuracy_ci_lo": iv.lo, "probe_accuracy_ci_hi": iv.hi}
    tracker.set_tags({"group": unit})
    tracker.set_tags({"probe_protocol": protocol, "probe_C": ",".join(f"{f['C']:g}" for f in folds)})
    tracker.log_metrics(scores)
    for f in folds:
        tracker.log_metrics({"fold_accuracy": f["test_accuracy"], "fold_C": f["C"]}, step=f["fold"])
    tracker.log_csv(folds, "probe_folds.csv")
    tracker.log_csv(grid, "probe_grid.csv")
    tracker.log_dict({"protocol": protocol, "group": unit, "Cs": Cs, "folds": n_folds, "inner_folds": inner, "max_iter": max_iter,
                      "seed": seed, "standardize": True, "model": "sklearn LogisticRegression (lbfgs, multinomial, L2)"},
                     "probe_hyperparameters.json")
    idx = np.flatnonzero(sel)
    tracker.log_csv([{"id": clips[i].id, "file": clips[i].path, "label": y[i], "predicted": pred[i], "correct": bool(pred[i] == y[i]),
                      "group": groups[i], "fold": int(fold_of[i])} for i in idx], "probe_predictions.csv")
    order = analysis.genre_order(X, y)  # every label, so predictions outside the test labels have a column
    cm, cols = metrics.confusion(yt, yp, order)
    who = model_label(cfg.model) + (f"@{cfg.model.corpus}" if cfg.model.get("corpus") else "") \
        + (" (random weights)" if cfg.model.get("pretrained", True) is False else "")
    what = f"linear probe, {who} on {dataset.name} ({len(yt)} test songs)"
    tracker.log_figure(plots.confusion_matrix(cm, order, cols, title=f"{what}\n{protocol}: accuracy {scores['probe_accuracy']:.3f}"),
                       "probe_confusion_matrix.png")
    log.info("%s, %s: accuracy %.3f%s (chance %.3f)", what, protocol, scores["probe_accuracy"],
             f" [{scores['probe_accuracy_ci_lo']:.3f}, {scores['probe_accuracy_ci_hi']:.3f}]" if "probe_accuracy_ci_lo" in scores else "",
             scores["chance_accuracy"])
    return scores
