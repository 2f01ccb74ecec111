"""Shared fixtures data for the registry and cache tests: small exported models and cheap variants of them."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

import mlejax as mle
from mlejax.format import read_mle, write_mle


def classification(n_features: int = 6):
    return make_classification(300, n_features, n_informative=3, n_redundant=0, n_classes=3, random_state=0)


def forest_file(tmp_path, n_estimators: int = 10):
    """(model, X, path) for a small RandomForest exported with a parity check."""
    X, y = classification()
    model = RandomForestClassifier(n_estimators, max_depth=6, random_state=0).fit(X, y)
    path = tmp_path / "forest.mle"
    mle.export_model(model, path, sample_input=X[:32])
    return model, X, path


def logistic_file(tmp_path, n_features: int = 5):
    """(model, X, path) for a LogisticRegression on ``n_features`` columns (another input schema)."""
    X, y = classification(n_features)
    model = LogisticRegression(max_iter=500).fit(X, y)
    path = tmp_path / f"logistic{n_features}.mle"
    mle.export_model(model, path, sample_input=X[:32])
    return model, X, path


def variant(source, path, tag: str) -> None:
    """Write a copy of the ``.mle`` file ``source`` whose user metadata says ``tag`` (new content, same model), fast."""
    with read_mle(source) as f:
        meta = dict(f.metadata, user={"variant": tag})
        write_mle(path, metadata=meta, graph=f.graph, tensors={k: np.array(v) for k, v in f.tensors.items()})
