"""Lineage: where a model came from, captured at export and kept in the file's metadata.

:func:`capture` runs in :func:`mlejax.export_model` and returns
``metadata["lineage"]``: the estimator's JSON-safe hyper-parameters, the git
commit (and whether the work tree had uncommitted changes) when exporting
inside a git work tree, a fingerprint of ``training_data=`` and the
``parent=`` model. :func:`from_metadata` adds what the file records
elsewhere (framework and version, mlejax version, the export parity report)
to give the full record the registry keeps.
"""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
from typing import Any

import numpy as np

__all__ = ["capture", "from_metadata", "fingerprint", "git_state", "hyperparameters", "parent_ref"]


def _plain(value: Any) -> Any:
    """A JSON-safe rendering of a hyper-parameter (objects become ``"<TypeName>"``)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(v) for k, v in value.items()}
    return f"<{type(value).__module__}.{type(value).__qualname__}>"


def hyperparameters(model: Any) -> dict[str, Any] | None:
    """``model.get_params(deep=False)`` made JSON-safe, or None for models without ``get_params``."""
    get_params = getattr(model, "get_params", None)
    if get_params is None:
        return None
    try:
        params = get_params(deep=False)
    except Exception:  # a framework whose get_params needs more; lineage is informational
        return None
    return {str(k): _plain(v) for k, v in sorted(params.items())}


def git_state(directory: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` of the git work tree holding ``directory`` (default: the working directory), or None.

    One ``git status`` call; ``dirty`` means tracked files differ from the commit.
    """
    try:
        out = subprocess.run(["git", "status", "--porcelain=v2", "--branch", "--untracked-files=no"],
                             cwd=directory, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.splitlines() if out.returncode == 0 else []
    commit = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")), None)
    if commit is None or commit == "(initial)":
        return None
    return {"commit": commit, "dirty": any(not line.startswith("#") for line in lines)}


def fingerprint(data: Any) -> dict[str, Any]:
    """sha256 of the bytes of ``data`` (an array or DataFrame), with its shape, dtype and column names."""
    columns = [str(c) for c in data.columns] if hasattr(data, "columns") else None
    arr = np.asarray(data.to_numpy() if hasattr(data, "to_numpy") else data)
    raw = repr(arr.tolist()).encode() if arr.dtype.kind == "O" else np.ascontiguousarray(arr).tobytes()
    return {"sha256": hashlib.sha256(raw).hexdigest(), "shape": list(arr.shape), "dtype": str(arr.dtype), "columns": columns}


def parent_ref(parent: Any) -> dict[str, Any]:
    """What ``parent=`` names: a registry ``ModelVersion``, a ``registry://`` URI, or a ``.mle`` path (hashed)."""
    if all(hasattr(parent, a) for a in ("name", "version", "sha256")):
        return {"name": parent.name, "version": parent.version, "sha256": parent.sha256}
    if isinstance(parent, str) and parent.startswith("registry://"):
        return {"uri": parent}
    if isinstance(parent, (str, os.PathLike)) and os.path.isfile(parent):
        from .registry.store import sha256_file

        return {"path": os.path.abspath(parent), "sha256": sha256_file(parent)}
    raise ValueError(f"parent={parent!r}: expected a registry ModelVersion, a registry:// URI or an existing .mle file")


def capture(model: Any, *, training_data: Any = None, parent: Any = None) -> dict[str, Any]:
    """The lineage :func:`mlejax.export_model` stores in ``metadata["lineage"]`` (None values left out)."""
    record = {
        "hyperparameters": hyperparameters(model),
        "git": git_state(),
        "training_data": None if training_data is None else fingerprint(training_data),
        "parent": None if parent is None else parent_ref(parent),
    }
    return {k: v for k, v in record.items() if v is not None}


def from_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """The full lineage of a file: framework and versions, parity report, and ``metadata["lineage"]``."""
    from .inspect import source_info

    source = source_info(meta)
    record = {
        "framework": source.get("framework"),
        "framework_version": source.get("framework_version"),
        "estimator": source.get("estimator"),
        "mlejax_version": meta.get("mlejax_version"),
        "exported_at": meta.get("created"),
        "parity": meta.get("verification"),
        **meta.get("lineage", {}),
    }
    return {k: v for k, v in record.items() if v is not None}
