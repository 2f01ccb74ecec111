"""Shared pieces of the gradient-boosting converters (XGBoost, LightGBM, CatBoost, sklearn HGB).

:class:`ForestBuilder` collects trees in each library's own node numbering and
emits one ``TreeEnsemble`` (version 2) and, on request, one ``TreeLeafIndex``
(version 2) over the same stored tensors. Every library's comparison is
rewritten into the op's ``x <= threshold`` on float32 input by the helpers
below; missing values and categorical sets use the op's per-node missing
interval and bitset mechanisms (see ``lowering/ops_trees.py``). For libraries
that round their input to float32 (``float32_input``) or whose float64
thresholds are given (``threshold64``), numeric nodes reading a scikit-learn
scaler's output are folded onto the scaler's input
(:func:`.sklearn_tree.fold_column_sources`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..format.errors import UnsupportedModelError
from ..format.graph import GraphBuilder
from ._common import set_classes
from .registry import ExportContext
from .sklearn_tree import float32_threshold, fold_column_sources

__all__ = [
    "ForestBuilder",
    "below_float32",
    "float32_threshold",
    "bitset_words",
    "binary_heads",
    "multiclass_heads",
    "scale",
    "add_x_input",
    "with_native",
]

_F32 = np.float32


def below_float32(t: Any) -> np.ndarray:
    """``x < t`` on float32 ⇔ ``x <= result``: the float32 just below ``t``."""
    t = np.asarray(t, dtype=_F32)
    return np.nextafter(t, _F32(-np.inf))


def bitset_words(categories: Iterable[int]) -> np.ndarray:
    """uint32 words with bit ``c & 31`` of word ``c >> 5`` set for each category ``c`` (>= 0)."""
    cats = np.asarray(list(categories), dtype=np.int64)
    n_words = int(cats.max()) // 32 + 1 if cats.size else 1
    words = np.zeros(n_words, dtype=np.uint32)
    np.bitwise_or.at(words, cats >> 5, (np.uint32(1) << (cats & 31).astype(np.uint32)))
    return words


@dataclass
class _Tree:
    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    default_left: np.ndarray
    values: np.ndarray
    missing: tuple | None
    cats: dict
    target: int
    leaf_ids: np.ndarray | None
    threshold64: np.ndarray | None


@dataclass
class ForestBuilder:
    """Collects trees; emits ``TreeEnsemble``/``TreeLeafIndex`` version 2.

    ``n_targets`` is the output width. With ``per_tree_target`` each tree has
    scalar leaves added to column ``target``; otherwise leaves are
    ``n_targets``-vectors.
    """

    n_targets: int
    per_tree_target: bool = False
    #: the library rounds its input to float32 and thresholds are for that: scaler thresholds fold (``fold_column_sources``)
    float32_input: bool = False
    cat_lo: float = -1.0
    cat_hi: float = float(2**31)
    cat_integer: bool = False
    trees: list = field(default_factory=list)
    _names: dict | None = None

    def add_tree(
        self,
        left: Sequence[int],
        right: Sequence[int],
        feature: Sequence[int],
        threshold: Sequence[float],
        default_left: Sequence[bool],
        values: Any,
        *,
        missing: tuple | None = None,
        cats: dict | None = None,
        target: int = 0,
        leaf_ids: Sequence[int] | None = None,
        threshold64: Sequence[float] | None = None,
    ) -> None:
        """Add one tree in local node numbering; node 0 is the root.

        ``left``/``right`` are local child indices, negative at leaves.
        ``threshold`` is already float32 for the op's ``x <= t`` test.
        ``values`` is [n_nodes] (per-tree target) or [n_nodes, n_targets].
        ``missing`` is an optional pair of per-node float32 arrays (lo, hi).
        ``cats`` maps local node → (uint32 words of the *left* set, other_left).
        ``leaf_ids`` maps local node → the library's leaf number (for ``apply``).
        ``threshold64``: the library's own float64 ``x <= t`` thresholds, for a
        library comparing float64 input (scaler folding uses them).
        """
        left = np.asarray(left, dtype=np.int64)
        n = left.shape[0]
        values = np.asarray(values, dtype=_F32).reshape(n, -1)
        width = 1 if self.per_tree_target else self.n_targets
        if values.shape[1] != width:
            raise ValueError(f"tree leaf values have width {values.shape[1]}, expected {width}")
        self.trees.append(_Tree(
            left, np.asarray(right, dtype=np.int64), np.asarray(feature, dtype=np.int64),
            np.asarray(threshold, dtype=_F32), np.asarray(default_left, dtype=bool), values,
            None if missing is None else (np.asarray(missing[0], _F32), np.asarray(missing[1], _F32)),
            dict(cats or {}), int(target), None if leaf_ids is None else np.asarray(leaf_ids, dtype=np.int64),
            None if threshold64 is None else np.asarray(threshold64, dtype=np.float64),
        ))

    def _arrays(self) -> dict:
        feature, threshold, left, right, default_left, values, roots, targets = [], [], [], [], [], [], [], []
        miss_lo, miss_hi, cat_start, cat_len, cat_other, leaf_ids = [], [], [], [], [], []
        words: list[np.ndarray] = []
        n_words = 0
        offset = 0
        depth = 0
        any_missing = any(t.missing is not None for t in self.trees)
        any_cat = any(t.cats for t in self.trees)
        any_leaf_ids = any(t.leaf_ids is not None for t in self.trees)
        for t in self.trees:
            n = t.left.shape[0]
            idx = np.arange(n, dtype=np.int64)
            leaf = t.left < 0
            roots.append(offset)
            targets.append(t.target)
            feature.append(np.where(leaf, 0, t.feature))
            threshold.append(np.where(leaf, _F32(0), t.threshold))
            left.append(np.where(leaf, idx, t.left) + offset)
            right.append(np.where(leaf, idx, t.right) + offset)
            default_left.append(t.default_left & ~leaf)
            values.append(t.values)
            depth = max(depth, _depth(t.left, t.right))
            if any_missing:
                lo, hi = t.missing if t.missing is not None else (np.full(n, np.inf, _F32), np.full(n, -np.inf, _F32))
                miss_lo.append(lo)
                miss_hi.append(hi)
            if any_cat:
                start = np.full(n, -1, np.int64)
                length = np.zeros(n, np.int64)
                other = np.zeros(n, bool)
                for node, (w, other_left) in sorted(t.cats.items()):
                    w = np.asarray(w, dtype=np.uint32)
                    start[node], length[node], other[node] = n_words, w.shape[0], bool(other_left)
                    words.append(w)
                    n_words += w.shape[0]
                cat_start.append(start)
                cat_len.append(length)
                cat_other.append(other)
            if any_leaf_ids:
                leaf_ids.append(t.leaf_ids if t.leaf_ids is not None else idx)
            offset += n
        if offset >= 2**31 or n_words >= 2**31:
            raise UnsupportedModelError(f"forest has {offset} nodes; at most 2**31 - 1 are supported")
        i32 = lambda parts: np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, np.int32)  # noqa: E731
        f32 = lambda parts: np.concatenate(parts).astype(_F32) if parts else np.zeros(0, _F32)  # noqa: E731
        return {
            "feature": i32(feature), "threshold": f32(threshold), "left": i32(left), "right": i32(right),
            "default_left": np.concatenate(default_left), "values": np.concatenate(values).astype(_F32),
            "roots": np.asarray(roots, np.int32),
            "tree_target": np.asarray(targets, np.int32) if self.per_tree_target else np.zeros(0, np.int32),
            "missing_lo": f32(miss_lo), "missing_hi": f32(miss_hi),
            "cat_start": i32(cat_start), "cat_len": i32(cat_len),
            "cat_bits": np.concatenate(words).astype(np.uint32) if words else np.zeros(0, np.uint32),
            "cat_other_left": np.concatenate(cat_other) if cat_other else np.zeros(0, bool),
            "leaf_ids": i32(leaf_ids), "max_depth": depth,
        }

    def _stored(self, ctx: ExportContext, x: str) -> dict:
        """Value names of the stored arrays, ``max_depth`` and ``input`` (``x``, or ``x`` with scaler inputs appended)."""
        if self._names is None:
            if not self.trees:
                raise UnsupportedModelError("the model has no trees (zero boosting rounds) — nothing to export")
            arrays = self._arrays()
            exact = [t.threshold64 for t in self.trees]
            exact = np.concatenate(exact) if all(t is not None for t in exact) else None
            if self.float32_input or exact is not None:  # numeric nodes without a missing interval test a scaler's input
                foldable = arrays["left"] != np.arange(arrays["left"].shape[0])
                if arrays["cat_start"].size:
                    foldable &= arrays["cat_start"] < 0
                if arrays["missing_lo"].size:
                    foldable &= arrays["missing_lo"] > arrays["missing_hi"]
                x, arrays["feature"], arrays["threshold"] = fold_column_sources(
                    ctx, x, arrays["feature"], arrays["threshold"], foldable, exact)
            b = ctx.builder
            self._names = {k: (v if k == "max_depth" else b.tensor(f"gbdt.{k}", v)) for k, v in arrays.items()} | {"input": x}
        return self._names

    def _attrs(self, names: dict, tree_range: tuple[int, int] | None = None) -> dict:
        attrs = {"max_depth": int(names["max_depth"]), "cat_lo": float(self.cat_lo), "cat_hi": float(self.cat_hi),
                 "cat_integer": bool(self.cat_integer)}
        if tree_range is not None and tuple(tree_range) != (0, len(self.trees)):
            attrs["tree_range"] = [int(tree_range[0]), int(tree_range[1])]
        return attrs

    _DECIDE = ("missing_lo", "missing_hi", "cat_start", "cat_len", "cat_bits", "cat_other_left")

    def ensemble(self, ctx: ExportContext, x: str, *, aggregate: str = "sum", base: Any = None,
                 tree_range: tuple[int, int] | None = None) -> str:
        """The [B, n_targets] sum (or mean) of leaf values plus ``base``, over trees ``tree_range`` (default: all)."""
        names = self._stored(ctx, x)
        ins = [names[k] for k in ("feature", "threshold", "left", "right", "default_left", "values", "roots", "tree_target")]
        ins += [names[k] for k in self._DECIDE]
        attrs = self._attrs(names, tree_range) | {"aggregate": aggregate, "n_targets": int(self.n_targets)}
        if base is not None:
            attrs["base"] = [float(v) for v in np.broadcast_to(np.asarray(base, np.float64), (self.n_targets,))]
        return ctx.builder.op("TreeEnsemble", names["input"], *ins, version=2, **attrs)

    def leaf_index(self, ctx: ExportContext, x: str, *, tree_range: tuple[int, int] | None = None,
                   squeeze_single: bool = False) -> str:
        """[B, n_trees] int32: the library's leaf number of each row in each tree (of ``tree_range``).

        ``squeeze_single``: [B] when the range (at call time) holds one tree, as XGBoost's ``pred_leaf``.
        """
        names = self._stored(ctx, x)
        ins = [names[k] for k in ("feature", "threshold", "left", "right", "default_left", "roots")]
        ins += [names[k] for k in self._DECIDE] + [names["leaf_ids"]]
        attrs = self._attrs(names, tree_range) | ({"squeeze_single": True} if squeeze_single else {})
        return ctx.builder.op("TreeLeafIndex", names["input"], *ins, version=2, **attrs)


def _depth(left: np.ndarray, right: np.ndarray) -> int:
    """Longest root-to-leaf path (edges) of a tree in local numbering, root 0."""
    depth = np.zeros(left.shape[0], np.int64)
    frontier = [0]
    best = 0
    seen = 0
    while frontier:
        nxt = []
        for node in frontier:
            seen += 1
            if seen > left.shape[0]:
                raise UnsupportedModelError("a tree's child links form a cycle")
            if left[node] >= 0:
                for c in (left[node], right[node]):
                    depth[c] = depth[node] + 1
                    best = max(best, int(depth[c]))
                    nxt.append(int(c))
        frontier = nxt
    return best


# --- heads ------------------------------------------------------------------------------

def scale(ctx: ExportContext, v: str, factor: float) -> str:
    """``v * factor`` (a stored float32 scalar)."""
    return ctx.builder.op("Mul", v, ctx.builder.tensor("gbdt.scale", np.float32(factor)))


def binary_heads(ctx: ExportContext, margin: str, classes: Any, *, proba: str | None, sigmoid_scale: float = 1.0,
                 label_from_margin: bool = False) -> dict:
    """Binary classifier heads from a [B, 1] margin: decision [B], probabilities, label.

    ``proba="sigmoid"`` gives ``p = 1/(1+exp(-sigmoid_scale*margin))`` and the
    label ``p > 0.5`` (or ``margin > 0`` with ``label_from_margin``, as sklearn);
    ``proba=None`` labels by ``margin > 0``.
    """
    b = ctx.builder
    set_classes(ctx, classes)
    d = b.op("Squeeze", margin, axis=1)
    out = {"decision": d}
    if proba is None:
        out["label"] = b.op("Greater", d, threshold=0.0)
        return out
    z = d if sigmoid_scale == 1.0 else scale(ctx, d, sigmoid_scale)
    p = b.op("Sigmoid", z)
    out["probabilities"] = b.op("TwoClassProba", p)
    z = b.op("Reshape", z, shape=[1])  # log-probabilities from the margin: exact where p rounds to 0 or 1
    out["log_probabilities"] = b.op("Concat", b.op("LogSigmoid", b.op("Neg", z)), b.op("LogSigmoid", z), axis=1)
    out["label"] = b.op("Greater", d, threshold=0.0) if label_from_margin else b.op("Greater", p, threshold=0.5)
    return out


def multiclass_heads(ctx: ExportContext, margin: str, classes: Any, *, proba: str = "softmax", sigmoid_scale: float = 1.0) -> dict:
    """Multiclass heads from [B, K] margins and argmax: ``softmax`` or per-class ``sigmoid`` (not normalised)."""
    b = ctx.builder
    set_classes(ctx, classes)
    out = {"decision": margin, "label": b.op("ArgMax", margin)}
    if proba == "softmax":
        out["probabilities"] = b.op("Softmax", margin)
        out["log_probabilities"] = b.op("LogSoftmax", margin)
    elif proba == "sigmoid":
        z = margin if sigmoid_scale == 1.0 else scale(ctx, margin, sigmoid_scale)
        out["probabilities"] = b.op("Sigmoid", z)
        out["log_probabilities"] = b.op("LogSigmoid", z)
    else:
        raise ValueError(f"unknown multiclass probability head {proba!r}")
    return out


def add_x_input(builder: GraphBuilder, n_features: int, feature_names: Sequence[str] | None) -> str:
    """The float32 [None, n_features] input ``X`` (for converters with a ``build_inputs`` hook)."""
    names = None if feature_names is None else [str(n) for n in feature_names]
    return builder.add_input("X", "float32", (None, int(n_features)), names)


def with_native(converter: Callable, native_method: Callable, build_inputs: Callable | None = None) -> Callable:
    """Attach ``native_method`` (how the library computes each method) and ``build_inputs`` to a converter."""
    converter.native_method = native_method
    if build_inputs is not None:
        converter.build_inputs = build_inputs
    return converter


# --- exact float64 splits ---------------------------------------------------------------

class RankedThresholds:
    """``exact_float64``: float64 thresholds replaced by ranks, decided on host-ranked inputs.

    The host replaces input column ``f`` by the number of the feature's
    boundaries strictly below the value (:mod:`mlejax.host`, kind ``rank``), so
    ``x <= t`` (float64) iff ``rank(x) <= index of t`` among the boundaries.
    """

    def __init__(self, boundaries: dict[int, Iterable[float]]) -> None:
        self.boundaries = {int(f): np.unique(np.asarray(list(v), np.float64)) for f, v in boundaries.items()}

    def rank(self, feature: int, t: float) -> np.float32:
        """The graph threshold for ``x <= t`` on ``feature`` (``t`` must be one of its boundaries)."""
        b = self.boundaries[int(feature)]
        i = int(np.searchsorted(b, t))
        if i >= b.size or b[i] != t:
            raise ValueError(f"threshold {t!r} is not a boundary of feature {feature}")
        return np.float32(i)

    def request(self, ctx: ExportContext, n_features: int, feature_names: Sequence[str] | None) -> None:
        """Ask the host to rank each feature's column (boundaries stored as float64 tensors)."""
        from ._host_encoding import request_rank_column, set_feature_names

        for f, values in sorted(self.boundaries.items()):
            request_rank_column(ctx, n_features, f, ctx.builder.tensor(f"gbdt.rank{f}", values))
        set_feature_names(ctx, feature_names)
