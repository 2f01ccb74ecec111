"""Load-path behaviour: tensor data verified lazily but before any use, tree layouts derived on first use."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

import mlejax
from mlejax.format import read_mle
from mlejax.format.container import KIND_TENSOR_DATA
from mlejax.format.errors import MLEFormatError

X = np.random.default_rng(0).normal(size=(200, 5)).astype(np.float32)
y = (X[:, 0] + X[:, 1] > 0).astype(int)


@pytest.fixture(scope="module")
def forest_file(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("load") / "rf.mle")
    mlejax.export_model(RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(X, y), path)
    return path


def _corrupt_tensor_byte(src: str, dst: str) -> None:
    """Copy ``src`` to ``dst`` with one byte of the first non-empty tensor flipped (layout and index intact)."""
    with read_mle(src) as f:
        data = next(s for s in f.sections if s.kind_id == KIND_TENSOR_DATA)
        spec = next(s for s in f.tensors.specs.values() if s.nbytes)
    raw = bytearray(open(src, "rb").read())
    raw[data.offset + spec.offset] ^= 0x40
    with open(dst, "wb") as fh:
        fh.write(raw)


@pytest.fixture()
def corrupt_file(forest_file, tmp_path) -> str:
    path = str(tmp_path / "corrupt.mle")
    _corrupt_tensor_byte(forest_file, path)
    return path


def test_load_reads_no_tensor_bytes(forest_file):
    model = mlejax.load_model(forest_file)
    tensors = model._file.tensors
    assert not tensors.verified and model.program._host is None
    assert set(tensors) == set(tensors.specs) and len(tensors) > 0
    model.predict(X[:3])
    assert tensors.verified and model.program._host is not None
    assert any("/" in name for name in model.program._host)  # the derived tree layouts, made on first use


@pytest.mark.parametrize(
    "use",
    [
        lambda m: m.predict(X[:2]),
        lambda m: m.predict_proba(X[:1]),
        lambda m: m.jax_function("probabilities"),
        lambda m: m.program.check_shapes(),
        lambda m: dict(m._file.tensors),
    ],
    ids=["predict", "predict_proba", "jax_function", "check_shapes", "tensors"],
)
def test_corrupted_tensor_byte_refused_before_use(corrupt_file, use):
    model = mlejax.load_model(corrupt_file)  # metadata, graph and index are intact: the load succeeds
    for _ in range(2):  # and every later use is refused too
        with pytest.raises(MLEFormatError, match="tensor_data section: checksum mismatch") as info:
            use(model)
        assert str(info.value).count(corrupt_file) == 1
    assert not model._file.tensors.verified


def test_corrupted_tensor_byte_refused_at_load_when_asked(corrupt_file):
    with pytest.raises(MLEFormatError, match="checksum mismatch"):
        mlejax.load_model(corrupt_file, check_shapes=True)
    with pytest.raises(MLEFormatError, match="checksum mismatch") as info:
        read_mle(corrupt_file)  # read_mle verifies everything unless lazy_tensors=True
    assert str(info.value).count(corrupt_file) == 1
    with pytest.raises(MLEFormatError, match="checksum mismatch"):
        mlejax.inspect_model(corrupt_file)


def test_lazy_read_matches_eager(forest_file):
    with read_mle(forest_file) as eager, read_mle(forest_file, lazy_tensors=True) as lazy:
        assert not lazy.tensors.verified
        for name, spec in lazy.tensors.specs.items():
            assert spec.shape == eager.tensors[name].shape and spec.dtype == eager.tensors[name].dtype
            np.testing.assert_array_equal(lazy.tensors[name], eager.tensors[name])
        assert lazy.tensors.verified


def test_corrupted_padding_refused_lazily(forest_file, tmp_path):
    with read_mle(forest_file) as f:
        data = next(s for s in f.sections if s.kind_id == KIND_TENSOR_DATA)
        first = next(iter(f.tensors.specs.values()))
        pad = data.offset + first.offset + first.nbytes  # the padding after the first tensor
        assert first.nbytes % 64
    raw = bytearray(open(forest_file, "rb").read())
    raw[pad] = 1
    path = str(tmp_path / "pad.mle")
    open(path, "wb").write(bytes(raw))
    model = mlejax.load_model(path)
    with pytest.raises(MLEFormatError, match="checksum mismatch"):
        model.predict(X[:1])


def test_same_predictions_as_before(forest_file):
    model = mlejax.load_model(forest_file)
    np.testing.assert_array_equal(model.predict(X), mlejax.load_model(forest_file, check_shapes=True).predict(X))
