"""Jobs that take fixed shapes (batch scoring, serving, mle-compile) refuse a model with a variable-length axis.

The refusal names the axes and points at ``Model.predict``, which buckets the
lengths; ``predict`` itself still matches torch on such a model.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import mlejax as mle  # noqa: E402
from mlejax.format.errors import UnsupportedModelError  # noqa: E402


class _MeanEmbedding(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(11, 4)

    def forward(self, ids):
        return self.emb(ids).mean(dim=1)


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    torch.manual_seed(0)
    net = _MeanEmbedding().eval()
    ids = torch.randint(0, 11, (3, 6))
    path = tmp_path_factory.mktemp("seq") / "text.mle"
    mle.export_model(net, path, sample_input=ids, input_shape=[(None, None)])
    return net, mle.load_model(path)


def test_predict_takes_several_lengths(text_model):
    net, m = text_model
    for length in (2, 5):
        ids = np.random.default_rng(length).integers(0, 11, (2, length))
        with torch.no_grad():
            ref = net(torch.as_tensor(ids)).numpy()
        np.testing.assert_allclose(m.predict(ids), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("job", ["batch", "compile"])
def test_fixed_shape_jobs_refuse_variable_axes(text_model, job, tmp_path):
    _, m = text_model
    with pytest.raises(UnsupportedModelError, match=r"variable-length axes \['.*\[1\]'\].*Model.predict"):
        if job == "batch":
            from mlejax.batch.columns import ScoringSpec

            ScoringSpec.resolve(m, ["ids"], positional=True)
        else:
            mle.compile(m, tmp_path / "out", target="stablehlo")


def test_serving_refuses_variable_axes(text_model):
    pytest.importorskip("starlette")
    from mlejax.serve.app import _Version

    _, m = text_model
    with pytest.raises(UnsupportedModelError, match="mle-serve takes inputs of fixed shape"):
        _Version(m, 1).warm(8)
