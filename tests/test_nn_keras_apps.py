"""keras.applications architectures (weights=None) against Keras' own predictions.

Every weight is perturbed and the batch-norm statistics are randomised (variances
in [0.5, 1.5]) so that layout and parameter-order bugs show; the classifier's
softmax is off (``classifier_activation=None``) so the logits are compared, not
saturated probabilities. Each model is exported once and compared with
``model(x, training=False)`` at batch sizes 1 (the export's own check) and 3. Bound (issue 18):
max |ours - keras| <= 1e-4 * max |keras|. MobileNetV2 (alpha 0.35, 32x32) runs
by default; the rest are marked slow.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")

import mlejax as mle  # noqa: E402

A = keras.applications
SIZE = 32
MODELS = {
    "MobileNetV2": lambda: A.MobileNetV2(input_shape=(SIZE, SIZE, 3), alpha=0.35, weights=None, classifier_activation=None),
    "MobileNetV3Small": lambda: A.MobileNetV3Small(input_shape=(SIZE, SIZE, 3), weights=None, classifier_activation=None),
    "MobileNetV3Large": lambda: A.MobileNetV3Large(input_shape=(SIZE, SIZE, 3), weights=None, classifier_activation=None),
    "EfficientNetB0": lambda: A.EfficientNetB0(input_shape=(SIZE, SIZE, 3), weights=None, classifier_activation=None),
    "EfficientNetV2B0": lambda: A.EfficientNetV2B0(input_shape=(SIZE, SIZE, 3), weights=None, classifier_activation=None),
    "ResNet50": lambda: A.ResNet50(input_shape=(SIZE, SIZE, 3), weights=None, classifier_activation=None),
    "DenseNet121": lambda: A.DenseNet121(input_shape=(SIZE, SIZE, 3), weights=None, classifier_activation=None),
    "ConvNeXtTiny": lambda: A.ConvNeXtTiny(input_shape=(SIZE, SIZE, 3), weights=None, classifier_activation=None),
    "NASNetMobile": lambda: A.NASNetMobile(input_shape=(SIZE, SIZE, 3), weights=None, classifier_activation=None),
}
DEFAULT = {"MobileNetV2"}


def _randomized(model, rng):
    """Perturb every weight; batch-norm variances become uniform in [0.5, 1.5]."""
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        new = []
        for v, w in zip(layer.weights, weights):
            if "variance" in v.name:
                new.append(rng.uniform(0.5, 1.5, w.shape).astype(w.dtype))
            else:
                new.append((w + 0.05 * rng.standard_normal(w.shape)).astype(w.dtype))
        layer.set_weights(new)
    return model


@pytest.mark.parametrize("name", [n if n in DEFAULT else pytest.param(n, marks=pytest.mark.slow) for n in MODELS])
def test_keras_application_matches_keras(name, tmp_path):
    rng = np.random.default_rng(18)
    model = _randomized(MODELS[name](), rng)
    x = rng.uniform(0, 255, (3, SIZE, SIZE, 3)).astype(np.float32)  # the models rescale raw pixels themselves
    path = tmp_path / f"{name}.mle"
    report = mle.export_model(model, path, sample_input=x[:1])  # batch 1: the export's own check against Keras
    ref1 = keras.ops.convert_to_numpy(model(x[:1], training=False))
    assert report["verification"]["predict"]["max_abs_error"] <= 1e-4 * float(np.max(np.abs(ref1)))
    ref = keras.ops.convert_to_numpy(model(x, training=False))
    ours = mle.load_model(path).predict(x)
    assert ours.shape == ref.shape
    err = float(np.max(np.abs(ours.astype(np.float64) - ref)))
    assert err <= 1e-4 * float(np.max(np.abs(ref))), f"{name} at batch 3: {err} vs max |ref| {np.max(np.abs(ref))}"
