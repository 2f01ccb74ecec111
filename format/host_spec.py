"""The host-encoding spec: which raw input columns are strings, and their categories.

Stored in a ``.mle`` file's metadata under ``"host_encoding"``; written by the
exporters (``mlejax.exporters._host_encoding``) and applied before the graph
runs by :class:`mlejax.host.HostEncoder`.

**The spec** (plain data, stored in the file's metadata under
``"host_encoding"``; converters put it in ``ctx.options["host_encoding"]``)::

    {"version": 1,
     "n_features": 5,                      # raw input width == graph input width
     "feature_names": ["city", ...] | None,  # raw column names (DataFrames are matched by name)
     "columns": [                          # only the columns that need the host
        {"index": 0, "kind": "category",
         "categories": ["Paris", "Rome"],  # non-missing categories, in categories_ order
         "missing": "nan" | "none" | None, # which missing marker is itself a category
         "unknown": "error" | "code"},
        {"index": 3, "kind": "ignore"}]}   # unused column: numbers if it has them, else 0

Codes of a ``category`` column: the position of the value in
``categories``; the missing marker named by ``missing`` (``None`` or a float
NaN) gives NaN, which the graph treats as the NaN category (scikit-learn keeps
a missing category last in ``categories_``); anything else is unknown and
gives -1 (no category has that code), or raises :class:`InputError` when
``unknown == "error"`` (as scikit-learn's ``handle_unknown="error"`` does).
Values are compared as strings (``str(value)``).
"""

from __future__ import annotations

from typing import Any

from .errors import MLEFormatError

__all__ = ["SPEC_VERSION", "RAW_INPUT", "validate_host_spec"]

SPEC_VERSION = 1
#: Name of the graph input that carries the raw columns (set by ``export_model``).
RAW_INPUT = "X"


def validate_host_spec(spec: Any) -> None:
    """Check a spec's structure; :class:`MLEFormatError` names the bad field."""

    def need(ok: bool, where: str, what: str) -> None:
        if not ok:
            raise MLEFormatError(f"metadata.host_encoding{where}: expected {what}")

    need(isinstance(spec, dict) and spec.get("version") == SPEC_VERSION, "", f"a map with version {SPEC_VERSION}")
    n = spec.get("n_features")
    need(isinstance(n, int) and not isinstance(n, bool) and 0 < n < 2**31, ".n_features", "a positive int")
    names = spec.get("feature_names")
    need(names is None or (isinstance(names, list) and len(names) == n and all(isinstance(s, str) for s in names)),
         ".feature_names", f"null or a list of {n} strings")
    cols = spec.get("columns")
    need(isinstance(cols, list), ".columns", "a list")
    seen = set()
    for i, c in enumerate(cols):
        where = f".columns[{i}]"
        need(isinstance(c, dict) and c.get("kind") in ("category", "ignore"), where, "a map with kind 'category' or 'ignore'")
        idx = c.get("index")
        need(isinstance(idx, int) and not isinstance(idx, bool) and 0 <= idx < n and idx not in seen, where + ".index", f"a unique column index below {n}")
        seen.add(idx)
        if c["kind"] == "category":
            cats = c.get("categories")
            need(isinstance(cats, list) and all(isinstance(s, str) for s in cats), where + ".categories", "a list of strings")
            need(len(set(cats)) == len(cats), where + ".categories", "distinct strings")
            need(c.get("missing") in (None, "nan", "none"), where + ".missing", "null, 'nan' or 'none'")
            need(c.get("unknown") in ("error", "code"), where + ".unknown", "'error' or 'code'")
