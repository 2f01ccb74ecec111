"""Networks with several named inputs: sample_input as a list or as a dict keyed by input name."""

import numpy as np
import pytest
import torch

import mlejax as mle
from helpers import assert_close


class TwoInputs(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(4, 3)
        self.b = torch.nn.Linear(2, 3)

    def forward(self, left, right):
        return torch.tanh(self.a(left)) * self.b(right)


@pytest.mark.parametrize("as_dict", [False, True])
def test_named_inputs(as_dict, tmp_path):
    torch.manual_seed(0)
    net = TwoInputs().eval()
    rng = np.random.default_rng(0)
    left, right = rng.normal(size=(7, 4)).astype(np.float32), rng.normal(size=(7, 2)).astype(np.float32)
    sample = {"right": right, "left": left} if as_dict else [left, right]
    report = mle.export_model(net, tmp_path / "two.mle", sample_input=sample)
    assert report["verification"]["predict"]["max_abs_error"] < 1e-6
    m = mle.load_model(tmp_path / "two.mle")
    assert [i.name for i in m.graph.inputs] == ["left", "right"]
    with torch.no_grad():
        native = net(torch.from_numpy(left), torch.from_numpy(right)).numpy()
    assert_close(m.predict(left, right), native)
    assert_close(m.run([left[:1], right[:1]])[0], native[:1])


def test_log_proba_check_agrees_where_float32_source_rounds_to_zero(tmp_path):
    """sklearn on float32 rows computes 1 - p in float32: -inf (log 0) where mlejax keeps float64's value. No warning."""
    import warnings

    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    X, y = make_classification(300, 5, n_informative=3, class_sep=6, random_state=0)
    X = X.astype(np.float32) * 10
    model = LogisticRegression(C=100).fit(X, y)
    with np.errstate(divide="ignore"):
        assert np.isneginf(model.predict_log_proba(X)).any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither "differs" nor a numpy RuntimeWarning
        report = mle.export_model(model, tmp_path / "m.mle", sample_input=X)
    assert report["verification"]["predict_log_proba"]["max_rel_error"] <= 1e-5


def test_log_proba_check_still_flags_real_differences():
    from mlejax.export import _errors

    native = np.array([[-np.inf, 0.0], [-1.0, -0.5], [-np.inf, -np.inf]])
    err, rel = _errors(np.array([[-17.0, 0.0], [-2.0, -0.5], [-np.inf, -np.inf]]), native, log=True)
    assert err[0, 0] < 1e-7 and err[2].max() == 0.0  # exp(-17) ~ 4e-8 against 0; equal infinities
    assert rel[1, 0] > 0.2  # log -2 against -1: the probabilities differ by 0.23
    assert np.isinf(_errors(np.array([-17.0]), np.array([-np.inf]), log=False)[0][0])
