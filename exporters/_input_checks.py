"""What the source model refuses in its raw input, recorded at export and checked on the host at predict.

``export_model`` stores the result in the file's metadata under ``"input_checks"``;
:class:`mlejax.host.InputChecks` applies it::

    {"nan": [0, 2],     # raw columns where the source model raises on NaN
     "inf": [0, 1, 2],  # raw columns where it raises on +-inf
     "by_name": true,   # a ColumnTransformer selects these columns by name: X must be a DataFrame
     "categories": [[1, [2.0, 5.0, NaN]]]}  # raw column, its numeric categories: any other value raises
                                           # (a one-hot / ordinal encoder with handle_unknown="error")

scikit-learn validates the input of each step: a step whose ``allow_nan`` tag
is false raises on NaN (``Input X contains NaN``), and nearly every step
raises on infinity, NaN-tolerant or not (``check_array``'s
``ensure_all_finite="allow-nan"``). A NaN in a raw column is refused when it
reaches such a step: imputers (and one-hot encoders, predictors) stop it,
scalers pass it on. XGBoost, LightGBM and CatBoost take NaN as missing and
infinity as a number; networks (torch, Keras, Flax) compute with both. For
them, and for any framework not analysed here, nothing is refused.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["input_checks"]

#: scikit-learn estimators that take infinity (``ensure_all_finite=False``).
_INF_OK = {"HistGradientBoostingClassifier", "HistGradientBoostingRegressor", "IsolationForest"}
#: Transformers whose output has no NaN where their input had one.
_NAN_STOPPERS = {"SimpleImputer", "KNNImputer", "IterativeImputer", "MissingIndicator", "OneHotEncoder"}
_BOOSTERS = {"xgboost", "lightgbm", "catboost"}
#: Meta-estimators that do not validate their input and pass it to the fitted estimators in this attribute.
_DELEGATES = {
    **dict.fromkeys(["BaggingClassifier", "BaggingRegressor", "VotingClassifier", "VotingRegressor", "StackingClassifier",
                     "StackingRegressor", "OneVsRestClassifier"], "estimators_"),
    **dict.fromkeys(["GridSearchCV", "RandomizedSearchCV", "HalvingGridSearchCV", "HalvingRandomSearchCV"], "best_estimator_"),
    "TransformedTargetRegressor": "regressor_",
}


def input_checks(model: Any, n_features: int | None) -> dict:
    """The ``"input_checks"`` metadata of ``model`` reading ``n_features`` raw columns (module docstring).

    ``n_features`` is ``None`` when the input is not one 2-D matrix (networks): nothing is refused.
    """
    if n_features is None or type(model).__module__.split(".")[0] != "sklearn":
        return {"nan": [], "inf": [], "by_name": False, "categories": []}
    columns = list(range(n_features))
    flow = _Flow()
    flow.visit(model, set(columns), set(columns), columns)
    categories = [[column, values] for column, values in sorted(flow.categories.items())]
    return {"nan": sorted(flow.nan), "inf": sorted(flow.inf), "by_name": flow.by_name, "categories": categories}


class _Flow:
    """Follows NaN and infinity from raw columns through a scikit-learn model, noting where a step refuses them."""

    def __init__(self) -> None:
        self.nan: set[int] = set()
        self.inf: set[int] = set()
        self.by_name = False
        self.categories: dict[int, list[float]] = {}

    def visit(self, est: Any, nan_in: set[int], inf_in: set[int], columns: list[int] | None) -> tuple[set[int], set[int]]:
        """Note what ``est`` refuses of the raw columns whose NaN / inf reach it; return those that reach its output.

        ``columns``: the raw column of each column ``est`` reads, or ``None`` when it reads computed values.
        """
        if est is None or est == "passthrough":
            return nan_in, inf_in
        if isinstance(est, str):  # "drop"
            return set(), set()
        name = type(est).__name__
        if name == "Pipeline":
            for _, step in est.steps:
                nan_in, inf_in = self.visit(step, nan_in, inf_in, columns)
                columns = columns if step is None or step == "passthrough" else None
            return nan_in, inf_in
        if name == "ColumnTransformer":
            return self._column_transformer(est, nan_in, inf_in, columns)
        if name == "FeatureUnion":
            return self._union([(t, nan_in, inf_in, columns) for _, t in est.transformer_list])
        if name in _DELEGATES:
            return self._delegate(est, nan_in, inf_in, columns)
        return self._step(est, nan_in, inf_in, columns)

    def _union(self, visits: list[tuple]) -> tuple[set[int], set[int]]:
        """Visit several estimators reading the same input; what reaches any of their outputs."""
        outs = [self.visit(*v) for v in visits]
        return set().union(*(o[0] for o in outs)), set().union(*(o[1] for o in outs))

    def _delegate(self, est: Any, nan_in: set[int], inf_in: set[int], columns: list[int] | None) -> tuple[set[int], set[int]]:
        subs = getattr(est, _DELEGATES[type(est).__name__])
        subs = list(subs) if isinstance(subs, list) else [subs]
        features = getattr(est, "estimators_features_", None)  # bagging: each estimator reads a subset of the columns
        if features is not None and columns is not None:
            picks = [[columns[i] for i in f.tolist()] for f in features]
            visits = [(sub, nan_in & set(pick), inf_in & set(pick), pick) for sub, pick in zip(subs, picks)]
        else:
            visits = [(sub, nan_in, inf_in, None if features is not None else columns) for sub in subs if not isinstance(sub, str)]
        if getattr(est, "passthrough", False):  # stacking: the final estimator also reads the input
            visits.append((est.final_estimator_, nan_in, inf_in, None))
        return self._union(visits)

    def _column_transformer(self, ct: Any, nan_in: set[int], inf_in: set[int], columns: list[int] | None) -> tuple[set[int], set[int]]:
        visits = []
        for name, transformer, spec in ct.transformers_:
            if columns is None:
                visits.append((transformer, nan_in, inf_in, None))
                continue
            self.by_name |= _names_columns(spec)
            selected = [columns[i] for i in ct._transformer_to_input_indices.get(name, range(ct.n_features_in_))]
            visits.append((transformer, nan_in & set(selected), inf_in & set(selected), selected))
        return self._union(visits)

    def _step(self, est: Any, nan_in: set[int], inf_in: set[int], columns: list[int] | None) -> tuple[set[int], set[int]]:
        """One estimator that validates its own input (meta-estimators: through their ``allow_nan`` tag)."""
        from sklearn.utils import get_tags

        top = type(est).__module__.split(".")[0]
        if top in _BOOSTERS:
            return set(), set()
        name = type(est).__name__
        if columns is not None and name in ("OneHotEncoder", "OrdinalEncoder") and est.handle_unknown == "error":
            self._known_categories(est, columns)
        if name == "FunctionTransformer" and not est.validate:  # also a ColumnTransformer's remainder="passthrough"
            return nan_in, inf_in
        if not get_tags(est).input_tags.allow_nan:
            self.nan |= nan_in
            nan_in = set()
        # Feature selectors check infinity only where they check NaN (SelectorMixin.transform).
        selector = hasattr(est, "get_support")
        if name not in _INF_OK and not (selector and get_tags(est).input_tags.allow_nan):
            self.inf |= inf_in
            inf_in = set()
        if not hasattr(est, "transform") or name in _NAN_STOPPERS or _encodes_missing(est):
            return set(), set()
        if selector and columns is not None:  # only the selected raw columns come out
            kept = {columns[i] for i in est.get_support(indices=True).tolist()}
            return nan_in & kept, inf_in & kept
        return nan_in, inf_in

    def _known_categories(self, encoder: Any, columns: list[int]) -> None:
        """Record the numeric categories of an encoder that raises on unknown values (string columns: the host encoding)."""
        for column, categories in zip(columns, encoder.categories_):
            if categories.dtype.kind in "biuf":
                values = [float(v) for v in categories]
                known = self.categories.get(column)  # two encoders of one column: the values both know
                self.categories[column] = values if known is None else [v for v in known if _member(v, values)]


def _names_columns(spec: Any) -> bool:
    """Whether a ColumnTransformer column selection names columns (scikit-learn then needs a DataFrame)."""
    if isinstance(spec, str):
        return True
    return hasattr(spec, "__iter__") and any(isinstance(c, str) for c in spec)


def _encodes_missing(est: Any) -> bool:
    """An OrdinalEncoder whose ``encoded_missing_value`` is a number: NaN does not come out."""
    value = getattr(est, "encoded_missing_value", None) if type(est).__name__ == "OrdinalEncoder" else None
    return isinstance(value, (int, float)) and not math.isnan(value)


def _member(value: float, values: list[float]) -> bool:
    """``value in values``, with NaN equal to NaN."""
    return value in values or (math.isnan(value) and any(math.isnan(v) for v in values))
