"""What a ``.mle`` file promises its callers (inputs, outputs, classes) and how two versions differ."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..format import MLEFile
from ..format.graph import Graph
from ..inspect import source_info

__all__ = ["describe", "breaking_changes", "diff"]

#: The fields of :func:`describe` that callers depend on: a change in them needs ``allow_breaking=True``.
CONTRACT = ("inputs", "classes")


def describe(mfile: MLEFile) -> dict[str, Any]:
    """Plain-data summary of a loaded file: source, methods, input schema, outputs, classes, ops."""
    meta = mfile.metadata
    graph = Graph.from_dict(mfile.graph, set(mfile.tensors))
    inputs = [
        {"name": i.name, "dtype": i.dtype, "shape": list(i.shape), "feature_names": None if i.feature_names is None else list(i.feature_names)}
        for i in graph.inputs
    ]
    host = meta.get("host_encoding")
    if isinstance(host, dict):  # string categories encoded on the host: the caller passes the raw columns
        inputs[0] = {"name": inputs[0]["name"], "dtype": "mixed", "shape": [None, host.get("n_features")],
                     "feature_names": host.get("feature_names")}
    source = source_info(meta)
    classes = meta.get("classes")
    return {
        "framework": source.get("framework"),
        "framework_version": source.get("framework_version"),
        "estimator": source.get("estimator"),
        "mlejax_version": meta.get("mlejax_version"),
        "exported_at": meta.get("created"),
        "methods": sorted(meta.get("methods", {})),
        "inputs": inputs,
        "outputs": sorted(graph.outputs),
        "classes": None if classes is None else classes.get("values"),
        "ops": dict(sorted(Counter(n.op for n in graph.nodes).items())),
        "tensor_bytes": int(sum(a.nbytes for a in mfile.tensors.values())),
        "signed": mfile.signed,
        "user_metadata": meta.get("user", {}),
    }


def _input_changes(old: list[dict], new: list[dict]) -> list[str]:
    changes = []
    if [i["name"] for i in old] != [i["name"] for i in new]:
        changes.append(f"input names {[i['name'] for i in old]} -> {[i['name'] for i in new]}")
    for a, b in zip(old, new):
        where = f"input {b['name']!r}"
        if a["shape"][1:] != b["shape"][1:]:
            changes.append(f"{where}: shape {['batch', *a['shape'][1:]]} -> {['batch', *b['shape'][1:]]}")
        if a["dtype"] != b["dtype"]:
            changes.append(f"{where}: dtype {a['dtype']} -> {b['dtype']}")
        if a["feature_names"] != b["feature_names"]:
            gone = [n for n in a["feature_names"] or [] if n not in (b["feature_names"] or [])]
            added = [n for n in b["feature_names"] or [] if n not in (a["feature_names"] or [])]
            detail = f"removed {gone[:5]}, added {added[:5]}" if gone or added else "same names, new order"
            changes.append(f"{where}: feature names changed ({detail})")
    return changes


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """How ``new`` breaks callers of ``old``: input schema (count, names, dtypes, shapes) and classes."""
    changes = _input_changes(old["inputs"], new["inputs"])
    if old["classes"] != new["classes"]:
        changes.append(f"classes {old['classes']} -> {new['classes']}")
    return changes


def diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Every field of two :func:`describe` summaries (plus ``size``) that differs, as ``{field: [old, new]}``, and the breaking changes."""
    fields = ("inputs", "outputs", "classes", "methods", "ops", "size", "estimator", "framework_version", "mlejax_version", "user_metadata")
    changed = {f: [old.get(f), new.get(f)] for f in fields if old.get(f) != new.get(f)}
    return {"changed": changed, "breaking": breaking_changes(old, new)}
