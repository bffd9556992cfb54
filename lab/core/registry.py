"""One way to build a configured kind: every config group names its implementation with ``_target_``.

Adding a dataset, a clusterer or an experiment is one module plus one YAML file; nothing else
lists them. :func:`instantiate_group` builds the object and turns Hydra's wrapped errors back into
the one sentence the builder raised.
"""

from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate

from lab.core.errors import LabError


def instantiate_group(spec: Any, group: str) -> Any:
    """``hydra.utils.instantiate(spec)``; a :class:`LabError` from the builder comes out unwrapped."""
    try:
        return instantiate(spec, _convert_="all")
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, LabError):
            raise cause from None
        detail = str(cause) if cause is not None else str(err).splitlines()[-1]
        name = spec.get("name") if hasattr(spec, "get") else None
        raise LabError(f"{group}={name!r} cannot be built from its config: {detail}") from None
