"""Embeddings computed elsewhere: ``model=embeddings model.path=FILE``.

The file is both the model and the items: every study that needs only song embeddings runs on it
(clustering, cluster scores, similarity, the probe, out-of-domain placement; tags if the file has
them); studies that need audio or gradients (transforms, dream, extract) stop with one sentence.

Formats (one item per row, rows in any order):

* ``.npz`` (``numpy.savez``): ``id`` [shape=(n,)] str, unique; ``embedding`` [shape=(n, d)] float;
  ``label`` [shape=(n,)] str (the genre; needed by clustering, probe and out-of-domain); optional
  ``part`` (or ``set``) [shape=(n,)] str naming the out-of-domain set of an item (empty = a
  reference item), ``artist`` [shape=(n,)] str (folds and bootstraps keep an artist's items
  together, as they do for GTZAN), ``tags`` [shape=(n, T)] float with ``tag_names`` [shape=(T,)] str. The lab's own
  ``embeddings.npz`` run artifact (``X``, ``ids``, ``labels``) is read as well.
* ``.csv`` / ``.parquet``: columns ``id``, ``label``, optional ``part`` (or ``set``), ``artist``, optional
  ``tag:<name>`` columns (tag probabilities), and the embedding either as one ``embedding`` column
  holding a list per row (``[0.1, 0.2, ...]``) or as numeric columns, every other column in file
  order being one dimension (e.g. ``e0, e1, ...``).

Ids are matched to a dataset's clip ids (``blues/blues.00000.wav`` for GTZAN: the path under the
genre root) when a file is compared with a lab model (``experiment=similarity``). Embeddings are
held as float32, the lab's own precision. A bad file — missing arrays, ragged or non-numeric
embeddings, NaN or infinity, repeated ids, mismatched lengths — is one sentence naming it.
"""

from __future__ import annotations

import ast
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from hydra.utils import to_absolute_path
from torch import nn

from lab.core.errors import LabError
from lab.core.storage import file_sha256
from lab.models.base import TaggerSpec
from lab.models.protocol import Built, model_label, safe_name

log = logging.getLogger(__name__)

SUFFIXES = (".npz", ".csv", ".parquet", ".pq")
ALIASES = {"id": ("id", "ids"), "label": ("label", "labels"), "embedding": ("embedding", "embeddings", "X"),
           "part": ("part", "set", "parts"), "artist": ("artist", "artists")}
FORMAT = "an embeddings file holds id (n), label (n) and embedding (n x d); see docs/bring-your-own-model.md"


@dataclass
class EmbeddingTable:
    """The items of an embeddings file, rows aligned."""

    path: str
    ids: list[str]
    X: np.ndarray  # (n, d) float32
    labels: list[str] | None  # None when the file has none
    parts: list[str] | None  # out-of-domain set per item ("" = reference), None when absent
    tags: np.ndarray | None  # (n, T) float32
    tag_names: list[str]
    artists: list[str] | None = None  # performing artist per item (folds and bootstraps keep an artist together)

    def __len__(self) -> int:
        return len(self.ids)


def _strings(values, what: str, path: str, n: int) -> list[str]:
    a = np.asarray(values)
    if a.ndim != 1 or len(a) != n:
        raise LabError(f"{path}: {what} has shape {a.shape} but the embedding has {n} rows; {what} needs one entry per item")
    out = ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in a.tolist()]
    return out


def _matrix(values, path: str) -> np.ndarray:
    """An (n, d) float32 matrix from whatever the file held; one sentence when ragged, non-numeric or not 2-D."""
    a = np.asarray(values) if not isinstance(values, list) else None
    if a is None or a.dtype == object:
        rows = list(values)
        lengths = {len(np.atleast_1d(r)) for r in rows}
        if len(lengths) > 1:
            lo, hi = min(lengths), max(lengths)
            raise LabError(f"{path}: the embedding rows have different lengths ({lo} to {hi} numbers); "
                           f"every item needs a vector of the same width")
        try:
            a = np.stack([np.asarray(r, dtype=np.float64) for r in rows]) if rows else np.zeros((0, 0))
        except (TypeError, ValueError):
            bad = next((r for r in rows if not _numeric(r)), rows[0] if rows else None)
            raise LabError(f"{path}: the embedding holds non-numeric values (e.g. {str(bad)[:40]!r}); it must hold numbers") from None
    if a.dtype.kind not in "fiub":
        raise LabError(f"{path}: the embedding holds non-numeric values (dtype {a.dtype}); it must hold numbers")
    if a.ndim != 2:
        raise LabError(f"{path}: the embedding has shape {a.shape}; it must be 2-D, one row (a vector) per item")
    if a.shape[1] == 0:
        raise LabError(f"{path}: the embedding has width 0; every item needs a vector of at least one number")
    return a.astype(np.float32)


def _numeric(row) -> bool:
    try:
        np.asarray(row, dtype=np.float64)
        return True
    except (TypeError, ValueError):
        return False


def _pick(names, key: str) -> str | None:
    return next((a for a in ALIASES[key] if a in names), None)


def _read_npz(path: Path) -> dict:
    try:
        z = np.load(path, allow_pickle=False)
    except ValueError as err:  # object arrays (e.g. ragged rows saved by numpy) need pickle, which we refuse
        if "allow_pickle" in str(err) or "Object arrays" in str(err):
            raise LabError(f"{path}: an array holds Python objects (e.g. ragged embedding rows or mixed types); "
                           f"save numbers as a float (n x d) array and strings as a str array") from None
        raise LabError(f"{path} cannot be read as an .npz file ({err})") from None
    except Exception as err:  # noqa: BLE001 - a damaged or foreign file: one sentence
        raise LabError(f"{path} cannot be read as an .npz file ({type(err).__name__})") from None
    try:
        names = list(z.files)
        out = {}
        for key in ("id", "label", "embedding", "part", "artist"):
            k = _pick(names, key)
            if k is not None:
                try:
                    out[key] = z[k]
                except ValueError:
                    raise LabError(f"{path}: array {k!r} holds Python objects (e.g. ragged embedding rows or mixed types); "
                                   f"save numbers as a float (n x d) array and strings as a str array") from None
        if "tags" in names:
            out["tags"] = z["tags"]
            out["tag_names"] = z["tag_names"] if "tag_names" in names else None
        out["_names"] = names
    finally:
        z.close()
    return out


def _read_frame(path: Path) -> dict:
    import pandas as pd

    try:
        df = pd.read_csv(path, keep_default_na=False, na_values=[]) if path.suffix == ".csv" else pd.read_parquet(path)
    except Exception as err:  # noqa: BLE001 - unreadable table: one sentence
        raise LabError(f"{path} cannot be read as a {path.suffix.lstrip('.')} table ({type(err).__name__}: "
                       f"{str(err).splitlines()[0][:120] if str(err) else ''})") from None
    cols = [str(c) for c in df.columns]
    df.columns = cols
    out: dict = {"_names": cols}
    for key in ("id", "label", "part", "artist"):
        k = _pick(cols, key)
        if k is not None:
            out[key] = df[k].to_numpy()
    tag_cols = [c for c in cols if c.startswith("tag:")]
    if tag_cols:
        out["tags"] = _matrix(_numeric_columns(df, tag_cols, path), str(path))
        out["tag_names"] = [c[len("tag:"):] for c in tag_cols]
    known = {k for key in ALIASES for k in ALIASES[key]} | set(tag_cols)
    if "embedding" in cols:
        cells = df["embedding"].tolist()
        out["embedding"] = [_parse_list(c, path) for c in cells]
    else:
        dims = [c for c in cols if c not in known]
        if dims:
            out["embedding"] = _numeric_columns(df, dims, path)
    return out


def _numeric_columns(df, cols: list[str], path: Path) -> np.ndarray:
    import pandas as pd

    for c in cols:
        if not pd.api.types.is_numeric_dtype(df[c]):
            bad = next((v for v in df[c].tolist() if not _numeric(v) or v == ""), df[c].iloc[0] if len(df) else "")
            raise LabError(f"{path}: column {c!r} holds non-numeric values (e.g. {str(bad)[:40]!r}); embedding columns must "
                           f"hold numbers (the others are id, label, part/set and tag:<name>)")
    return df[cols].to_numpy(dtype=np.float64)


def _parse_list(cell, path: Path):
    if isinstance(cell, str):
        try:
            return ast.literal_eval(cell.strip()) if cell.strip() else []
        except (ValueError, SyntaxError):
            raise LabError(f"{path}: an embedding cell is not a list of numbers (e.g. {cell[:40]!r})") from None
    return cell


def read_embeddings(path: str | Path) -> EmbeddingTable:
    """Read and check an embeddings file (``.npz``, ``.csv`` or ``.parquet``); one sentence on any problem."""
    p = Path(path)
    if p.suffix.lower() not in SUFFIXES:
        raise LabError(f"model.path={path} is not an embeddings file: use .npz, .csv or .parquet ({FORMAT})")
    if not p.is_file():
        raise LabError(f"model.path={path} does not exist; {FORMAT}")
    raw = _read_npz(p) if p.suffix.lower() == ".npz" else _read_frame(p)
    missing = [k for k in ("id", "embedding") if k not in raw]
    if missing:
        found = ", ".join(raw["_names"]) or "nothing"
        raise LabError(f"{p} has no {' and no '.join(repr(m) for m in missing)} {'array' if p.suffix == '.npz' else 'column'} "
                       f"(found: {found}); {FORMAT}")
    X = _matrix(raw["embedding"], str(p))
    n = len(X)
    if n == 0:
        raise LabError(f"{p} holds no items; {FORMAT}")
    ids = _strings(raw["id"], "id", str(p), n)
    if any(i == "" for i in ids):
        raise LabError(f"{p}: {sum(i == '' for i in ids)} item(s) have an empty id; every item needs a unique id")
    seen, dup = set(), []
    for i in ids:
        (dup.append(i) if i in seen else seen.add(i))
    if dup:
        raise LabError(f"{p} repeats id {dup[0]!r} ({len(set(dup))} id(s) appear more than once); ids must be unique")
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        raise LabError(f"{p}: the embedding holds NaN or infinite values in {int(bad.sum())} of {n} rows "
                       f"(first: id {ids[int(np.argmax(bad))]!r}); every value must be a finite number")
    labels = _strings(raw["label"], "label", str(p), n) if "label" in raw else None
    if labels is not None and any(lab == "" for lab in labels):
        first = ids[labels.index("")]
        raise LabError(f"{p}: {sum(lab == '' for lab in labels)} item(s) have an empty label (first: id {first!r}); "
                       f"give every item its label, or drop the label column for studies that need none")
    parts = _strings(raw["part"], "part", str(p), n) if "part" in raw else None
    artists = _strings(raw["artist"], "artist", str(p), n) if "artist" in raw else None
    tags, tag_names = None, []
    if raw.get("tags") is not None:
        tags = _matrix(raw["tags"], str(p))
        if len(tags) != n:
            raise LabError(f"{p}: tags has {len(tags)} rows but the embedding has {n}; one row of tag values per item")
        if not np.isfinite(tags).all():
            raise LabError(f"{p}: tags hold NaN or infinite values; every value must be a finite number")
        names = raw.get("tag_names")
        tag_names = [str(t) for t in np.asarray(names).tolist()] if names is not None else [f"tag{i:03d}" for i in range(tags.shape[1])]
        if len(tag_names) != tags.shape[1]:
            raise LabError(f"{p}: tag_names lists {len(tag_names)} names for {tags.shape[1]} tag columns")
    return EmbeddingTable(str(p), ids, X, labels, parts, tags, tag_names, artists)


class PrecomputedEmbeddings(nn.Module):
    """The file's vectors as a model that cannot embed audio: the pipeline reads ``table`` instead."""

    differentiable = False

    def __init__(self, table: EmbeddingTable, name: str) -> None:
        super().__init__()
        self.table = table
        self.info = TaggerSpec(name, 0, None, int(table.X.shape[1]), paper=f"embeddings file {table.path}")

    def embed_and_tag(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise LabError(f"model=embeddings holds vectors computed elsewhere ({self.table.path}); it cannot embed audio")


def build_embeddings(*, name: str = "embeddings", path: str, id: str | None = None, dataset: str | None = None,
                     pretrained: bool = True, seed: int = 0) -> Built:
    """Read ``path`` (resolved from the launch directory) as a model whose items and vectors are given."""
    if not path or path == "???":
        raise LabError(f"model=embeddings needs model.path=FILE; {FORMAT}")
    table = read_embeddings(to_absolute_path(str(path)))
    label = model_label({"name": name, "id": id, "path": path})
    model = PrecomputedEmbeddings(table, safe_name(f"embeddings-{label}"))
    log.info("model=embeddings %s: %d items, %d-d%s%s", table.path, len(table), table.X.shape[1],
             "" if table.labels is not None else ", no labels", f", {table.tags.shape[1]} tags" if table.tags is not None else "")
    return Built(model, file_sha256(table.path), table.tag_names, label=label)
