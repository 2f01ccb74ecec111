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
