"""mlejax.score on 4 (forced host) CPU devices gives exactly the single-device results; run in its own process.

A model may pick its program by batch size (tree strategies), so the runs compared give each device the same rows per batch.
"""

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("pyarrow")
pytest.importorskip("tqdm")

SCRIPT = textwrap.dedent(
    """
    import jax
    import numpy as np
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.neural_network import MLPClassifier

    import mlejax as mle
    from mlejax.batch.devices import ShardedRunner

    assert len(jax.devices("cpu")) == 4, jax.devices()
    X, y = make_classification(1003, 7, n_informative=5, n_classes=3, random_state=0)
    X = X.astype(np.float32)
    for i, native in enumerate([RandomForestClassifier(10, max_depth=6, random_state=0), MLPClassifier((16,), max_iter=50, random_state=0)]):
        native.fit(X, y)
        path = f"{sys.argv[1]}/m{i}.mle"
        mle.export_model(native, path, sample_input=X[:16])
        model = mle.load_model(path)
        for method in ("predict_proba", "predict"):
            # The same rows per device (250, run as 256) on 4, 1 and 2 devices: a row's result must not change.
            kw = dict(method=method, progress=False)
            every = mle.score(model, X[:1000], batch_rows=1000, **kw)
            one = mle.score(model, X[:1000], batch_rows=250, device=[jax.devices()[0]], **kw)
            pair = mle.score(model, X[:1000], batch_rows=500, device=jax.devices()[2:], **kw)
            assert every.devices == [str(d) for d in jax.devices()] and one.devices == ["cpu:0"] and len(pair.devices) == 2
            assert every.output.equals(one.output) and pair.output.equals(one.output), (type(native).__name__, method)
            # 1003 rows: the last batch (3 rows) is padded, into the full batch's shape.
            ours = np.stack([c.to_numpy() for c in mle.score(model, X, batch_rows=1000, **kw).output.columns], 1).squeeze()
            if method == "predict":
                assert (ours == model.predict(X)).all() and (ours == native.predict(X)).all()
            else:
                np.testing.assert_allclose(ours, model.predict_proba(X), rtol=1e-6, atol=1e-7)
                np.testing.assert_allclose(ours, native.predict_proba(X), rtol=1e-5, atol=1e-5)
    runner = ShardedRunner(model, "probabilities", jax.devices())
    assert [runner.padded(n) for n in (1, 250, 1003)] == [4, 256, 1024]  # a power of two per device, times 4
    leaf = next(iter(runner.params.values()))
    assert len(leaf.sharding.device_set) == 4 and leaf.sharding.is_fully_replicated
    print("ok")
    """
)


def test_four_devices_match_one(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join(sys.path)}
    # cwd: not the repository root, whose source tree would shadow the installed package
    done = subprocess.run([sys.executable, "-c", "import sys\n" + SCRIPT, str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stdout[-3000:] + done.stderr[-3000:]
