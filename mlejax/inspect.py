"""``inspect_model``: what a ``.mle`` file holds, without compiling it."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from .format import read_mle
from .format.graph import Graph
from .format.signing import fingerprint
from .lowering import registered_ops

__all__ = ["inspect_model", "InspectReport", "source_info", "signature_state"]


def source_info(metadata: dict) -> dict:
    """``metadata["source"]`` (framework, version, estimator) as a map; ``{}`` when absent or not a map."""
    source = metadata.get("source")
    return source if isinstance(source, dict) else {}


def signature_state(mfile: Any) -> str:
    """``"signed (verified)"``, ``"signed (not verified)"`` or ``"unsigned"`` for a read :class:`~mlejax.format.MLEFile`."""
    return "signed (verified)" if mfile.signer else "signed (not verified)" if mfile.signed else "unsigned"


class InspectReport(dict):
    """What :func:`inspect_model` returns: a plain ``dict`` that Jupyter shows as an HTML card."""

    def plot(self, top: int = 15) -> Any:
        """Bytes per tensor (the ``top`` largest) and op counts (needs matplotlib); see :func:`mlejax.plot.inspect`."""
        from .plot import inspect

        return inspect(self, top)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from .display import inspect_html, mimebundle

        return mimebundle(self, inspect_html, include, exclude)


def inspect_model(
    path: str | os.PathLike, *, key: bytes | None = None, password: str | None = None, public_key: Any = None
) -> InspectReport:
    """Metadata, inputs, outputs, op counts, tensor sizes and recommendations of a ``.mle`` file.

    An encrypted file needs its ``key`` or ``password``. ``signature`` is
    ``"unsigned"``, ``"signed (not verified)"``, or, when ``public_key`` (one
    or a list, as for ``load_model``) is given and the signature verifies,
    ``"signed (verified)"`` with the key's fingerprint in ``signer``. A bad
    signature under ``public_key`` raises :class:`~mlejax.MLESecurityError`.
    """
    with read_mle(os.fspath(path), key=key, password=password, public_key=public_key) as f:
        graph = Graph.from_dict(f.graph, set(f.tensors))
        tensors = [
            {"name": name, "dtype": str(a.dtype), "shape": list(a.shape), "nbytes": int(a.nbytes)}
            for name, a in f.tensors.items()
        ]
        sections = [
            {"kind": s.kind, "stored_bytes": s.length, "raw_bytes": s.raw_length, "compressed": s.compressed}
            for s in f.sections
        ]
        info = InspectReport({
            "path": os.fspath(path),
            "signature": signature_state(f),
            "signer": fingerprint(f.signer) if f.signer else None,
            "encrypted": f.encrypted,
            "file_size_bytes": f.file_size,
            "format_version": f.format_version,
            "metadata": f.metadata,
            "inputs": [{"name": i.name, "dtype": i.dtype, "shape": list(i.shape)} for i in graph.inputs],
            "outputs": dict(graph.outputs),
            "ops": dict(Counter(n.op for n in graph.nodes)),
            "sections": sections,
            "tensors": tensors,
            "tensor_bytes": sum(t["nbytes"] for t in tensors),
        })
    info["recommendations"] = _recommend(info)
    return info


def _recommend(info: dict) -> list[str]:
    recs = []
    known = registered_ops()
    unknown = sorted(op for op in info["ops"] if op not in known)
    if unknown:
        recs.append(f"ops not supported by this mlejax: {unknown}; upgrade mlejax to run this file")
    compressed = any(s["compressed"] for s in info["sections"])
    if not compressed and info["tensor_bytes"] > 1 << 20:
        recs.append("re-export with compression='zstd' for a smaller file (loading then copies instead of mapping)")
    if info["signature"] == "unsigned":
        recs.append("unsigned: sign it with mle-sign so loaders can verify where it came from")
    elif info["signature"] == "signed (not verified)":
        recs.append("signed, but not verified here: pass public_key= (or run mle-verify) to check who signed it")
    if "TreeEnsemble" in info["ops"]:
        recs.append("pass warmup=[batch sizes] to load_model to compile ahead of the first call")
    return recs
