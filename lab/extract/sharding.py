"""Which clips one extraction shard embeds: ``embed.shard=I/N`` (0 <= I < N).

N processes (a SLURM array, a Hydra multirun over ``embed.shard``, Ray tasks) each embed one
shard into the shared cache; the studies then run on the full cache. Shards are disjoint and
together cover every clip, whatever the order the clips were listed in: positions refer to the
clips sorted by id.

Two layouts: ``stride`` (default) takes positions ``I, I+N, I+2N, ...`` — every shard sees every
genre/folder, so shards take about equally long even when clip lengths cluster by folder;
``block`` takes one contiguous run of positions (``I/N:block``), which keeps a shard's files
together on disk.
"""

from __future__ import annotations

import re
from typing import Sequence

from lab.core.errors import LabError

LAYOUTS = ("stride", "block")
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*(?::\s*(\w+))?\s*$")


def parse_shard(spec: str | None) -> tuple[int, int, str] | None:
    """``"I/N"`` or ``"I/N:block"`` -> ``(I, N, layout)``; ``None`` or ``""`` -> None (no sharding)."""
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return None
    m = _SPEC.match(str(spec))
    if not m:
        raise LabError(f"embed.shard={spec!r} must look like I/N (e.g. 0/4, shard 0 of 4) or I/N:block")
    i, n, layout = int(m.group(1)), int(m.group(2)), (m.group(3) or "stride")
    if n < 1:
        raise LabError(f"embed.shard={spec!r}: the number of shards N={n} must be >= 1")
    if not 0 <= i < n:
        raise LabError(f"embed.shard={spec!r}: the shard index I={i} must be in 0..{n - 1} (shards count from 0)")
    if layout not in LAYOUTS:
        raise LabError(f"embed.shard={spec!r}: layout {layout!r} is unknown; choose {' or '.join(LAYOUTS)}")
    return i, n, layout


def shard_indices(n: int, spec: str | None) -> list[int]:
    """Positions ``0 <= p < n`` that shard ``spec`` owns, increasing; all of them when ``spec`` is None.

    Parameters
    ----------
    n : int >= 0
        Number of items (clips, in sorted order).
    spec : str or None
        ``"I/N"`` (stride layout), ``"I/N:stride"`` or ``"I/N:block"``.

    Returns
    -------
    positions : list[int]
        Disjoint across ``I = 0..N-1`` and covering ``range(n)`` together. Block layout gives
        shard I the positions ``[I*n//N, (I+1)*n//N)``, so sizes differ by at most one.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise LabError(f"n={n!r} must be a non-negative integer")
    parsed = parse_shard(spec)
    if parsed is None:
        return list(range(n))
    i, k, layout = parsed
    if layout == "stride":
        return list(range(i, n, k))
    return list(range(i * n // k, (i + 1) * n // k))


def shard_of(ids: Sequence[str], spec: str | None) -> list[int]:
    """Indices into ``ids`` that shard ``spec`` owns, with positions taken in sorted-id order."""
    order = sorted(range(len(ids)), key=lambda j: ids[j])
    return sorted(order[p] for p in shard_indices(len(ids), spec))
