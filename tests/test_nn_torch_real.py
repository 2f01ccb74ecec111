"""Real architectures through the PyTorch exporter: transformers models from tiny configs and timm models.

Random weights (batch-norm statistics randomised so layout bugs show), each
compared with the framework itself at batches 1 and 3. Text models are
exported with a variable sequence length (``input_shape=[(None, None), ...]``)
and run at several lengths; the bound is 1e-4 * max|torch| (typical is
~3e-7). The default run keeps a representative few (tiny BERT with a mask,
tiny GPT-2, one timm convnet); the rest are ``slow``.

timm imports torchvision at import time, and the registry's torchvision wheel
is a CUDA build that does not load beside the CPU torch. timm only needs
torchvision names to exist while building these models (it calls none of
them), so :func:`_timm` puts a stand-in ``torchvision`` module on the import
path while timm is imported (and takes it off after), whose every attribute is
a class that raises when used.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import mlejax as mle  # noqa: E402
from mlejax.format.errors import InputError, MLEFormatError, UnsupportedModelError  # noqa: E402

rng = np.random.default_rng(0)


def _rel_error(ours: np.ndarray, ref: np.ndarray) -> float:
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    return float(np.abs(ours - ref).max() / max(np.abs(ref).max(), 1e-30))


def _torch(module, inputs: list[np.ndarray]) -> np.ndarray:
    with torch.no_grad():
        return module(*[torch.from_numpy(a) for a in inputs]).numpy()


# --- transformers ------------------------------------------------------------------------


class _Text(torch.nn.Module):
    """A transformers model called with (input_ids[, attention_mask]); returns its first output."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask)[0]


VOCAB = 61


def _text_model(kind: str):
    tf = pytest.importorskip("transformers")
    small = dict(num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, max_position_embeddings=40)
    configs = {
        "bert": lambda: tf.BertModel(tf.BertConfig(vocab_size=VOCAB, hidden_size=16, **small)),
        "roberta": lambda: tf.RobertaModel(tf.RobertaConfig(vocab_size=VOCAB, hidden_size=16, pad_token_id=1, **{**small, "max_position_embeddings": 42})),
        "distilbert": lambda: tf.DistilBertForSequenceClassification(tf.DistilBertConfig(
            vocab_size=VOCAB, dim=16, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=40, num_labels=3)),
        "gpt2": lambda: tf.GPT2Model(tf.GPT2Config(vocab_size=VOCAB, n_embd=16, n_layer=2, n_head=4, n_positions=40,
                                                   bos_token_id=0, eos_token_id=0)),
        "t5": lambda: tf.T5EncoderModel(tf.T5Config(vocab_size=VOCAB, d_model=16, d_kv=4, d_ff=37, num_layers=2, num_heads=4,
                                                    relative_attention_num_buckets=8, relative_attention_max_distance=20)),
    }
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = configs[kind]()
    model.config._attn_implementation = "sdpa"
    return _Text(model.eval())


def _text_inputs(batch: int, length: int, mask: bool) -> list[np.ndarray]:
    ids = rng.integers(0, VOCAB, (batch, length))
    if not mask:
        return [ids]
    attention = np.ones((batch, length), np.int64)
    attention[-1, max(1, length // 2):] = 0  # the last row is padded
    return [ids, attention]


def check_text(kind: str, mask: bool, tmp_path, lengths=(3, 7, 19), batches=(1, 3)) -> tuple[float, dict, object]:
    """Export with a variable length, compare with torch at every (batch, length); return (worst error, sequence metadata, model)."""
    module = _text_model(kind)
    sample = _text_inputs(3, 10, mask)
    path = tmp_path / f"{kind}.mle"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = mle.export_model(module, path, sample_input=sample, input_shape=[(None, None)] * len(sample))
    assert report["verification"]["predict"]["max_rel_error"] <= 1e-4
    m = mle.load_model(path)
    worst = 0.0
    for batch in batches:
        for length in lengths:
            inputs = _text_inputs(batch, length, mask)
            worst = max(worst, _rel_error(m.predict(*inputs), _torch(module, inputs)))
    assert worst <= 1e-4, (kind, mask, worst)
    return worst, m.metadata["sequence"], m


def test_bert_with_mask_buckets_the_length(tmp_path):
    """Zero padding with the mask is exact for BERT: lengths 5 and 7 share the bucket 8, and no length past 40 runs."""
    worst, seq, m = check_text("bert", True, tmp_path, lengths=(5, 7, 19), batches=(1, 3))
    assert seq["pad"] is True
    assert [a[:3] for a in seq["axes"]] == [["input_ids", 1, 40], ["attention_mask", 1, 40]]
    assert seq["outputs"] == [["output", 1, "input_ids", 1]]
    assert {shape[1] for key in m.program.compile_seconds for shape in key[1]} == {8, 32}  # lengths 5, 7 -> 8; 19 -> 32
    with pytest.raises(InputError, match="lengths 1 to 40"):
        m.predict(*_text_inputs(1, 41, True))
    with pytest.raises(InputError, match="needs them equal"):
        m.predict(rng.integers(0, VOCAB, (1, 5)), np.ones((1, 6), np.int64))


def test_gpt2_without_mask_pads_exactly(tmp_path):
    """Causal attention never looks at the padding, so GPT-2 is bucketed even without a mask."""
    worst, seq, m = check_text("gpt2", False, tmp_path, lengths=(2, 9), batches=(3,))
    assert seq["pad"] is True


@pytest.mark.slow
@pytest.mark.parametrize("mask", [False, True], ids=["no_mask", "mask"])
@pytest.mark.parametrize("kind", ["bert", "roberta", "distilbert", "gpt2", "t5"])
def test_transformers_text(kind, mask, tmp_path):
    """Every text model, with and without a mask, at lengths 2..33 and batches 1 and 3."""
    worst, seq, m = check_text(kind, mask, tmp_path, lengths=(2, 3, 7, 16, 33))
    # Zero padding is exact with a mask, and for causal GPT-2 without; a bidirectional model without a mask
    # attends to the padding, so every length compiles its own program.
    assert seq["pad"] is (mask or kind == "gpt2")


@pytest.mark.slow
def test_transformers_vit(tmp_path):
    tf = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = tf.ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=16, num_hidden_layers=2,
                       num_attention_heads=4, intermediate_size=37)
    cfg._attn_implementation = "sdpa"
    cfg.num_labels = 5
    module = tf.ViTForImageClassification(cfg).eval()

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vit = module

        def forward(self, pixel_values):
            return self.vit(pixel_values=pixel_values).logits

    wrapped = Logits().eval()
    x = rng.standard_normal((3, 3, 16, 16)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mle.export_model(wrapped, tmp_path / "vit.mle", sample_input=x)
    m = mle.load_model(tmp_path / "vit.mle")
    for batch in (1, 3):
        xb = rng.standard_normal((batch, 3, 16, 16)).astype(np.float32)
        assert _rel_error(m.predict(xb), _torch(wrapped, [xb])) <= 1e-4


# --- single ops ------------------------------------------------------------------------------


def _export_check(module, inputs, tmp_path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mle.export_model(module, tmp_path / "m.mle", sample_input=inputs, **kw)
    m = mle.load_model(tmp_path / "m.mle")
    return m


def test_advanced_index_and_symbolic_arange(tmp_path):
    """x[arange(B)[:, None], idx] (adjacent index arrays), x[:, idx, :, j] (split: result dims first), gather."""

    class Net(torch.nn.Module):
        def forward(self, x, idx):
            rows = torch.arange(x.shape[0])[:, None]
            picked = x[rows, idx]                      # [B, K, C, D]
            split = x[:, idx[0], :, idx[0] % 2]        # index arrays at axes 1 and 3: their dims go first
            g = torch.gather(x[:, :, 0, 0], 1, idx % 6)  # [B, K]; gather takes no negative indices
            return picked.sum((2, 3)) + g + split.sum((0, 2))[:, None]

    x = rng.standard_normal((5, 6, 3, 2)).astype(np.float32)
    idx = rng.integers(-6, 6, (5, 4))
    m = _export_check(Net().eval(), [x, idx], tmp_path)
    for batch in (1, 3, 9):
        xb = rng.standard_normal((batch, 6, 3, 2)).astype(np.float32)
        ib = rng.integers(-6, 6, (batch, 4))
        assert _rel_error(m.predict(xb, ib), _torch(Net(), [xb, ib])) <= 1e-6


def test_boolean_mask_index_is_refused(tmp_path):
    class Net(torch.nn.Module):
        def forward(self, x):
            return x[:, x[0] > 0].sum(1)

    with pytest.raises(UnsupportedModelError, match="boolean mask"):
        _export_check(Net().eval(), [rng.standard_normal((4, 5)).astype(np.float32)], tmp_path)


def test_as_strided_views_and_refusal(tmp_path):
    """A re-read of a contiguous tensor in another axis order is a view; an overlapping window is refused."""

    class View(torch.nn.Module):
        def forward(self, x):
            b = x.shape[0]
            t = torch.as_strided(x.contiguous(), (b, 4, 3, 1), (12, 1, 4, 12))  # [B,3,4] read as its transpose
            return t.squeeze(-1) * 2

    class Window(torch.nn.Module):
        def forward(self, x):
            return torch.as_strided(x.contiguous(), (x.shape[0], 2, 3), (12, 1, 1))  # overlapping windows

    x = rng.standard_normal((3, 3, 4)).astype(np.float32)
    m = _export_check(View().eval(), x, tmp_path)
    for batch in (1, 5):
        xb = rng.standard_normal((batch, 3, 4)).astype(np.float32)
        np.testing.assert_array_equal(m.predict(xb), _torch(View(), [xb]))
    with pytest.raises(UnsupportedModelError, match="as_strided is supported only where .* every element once"):
        _export_check(Window().eval(), x, tmp_path)


def test_sequence_metadata_is_checked(tmp_path):
    """A file whose sequence metadata does not describe its variable axes is a format error at load."""
    from mlejax.format.graph import GraphBuilder
    from mlejax.lowering.seq_buckets import check_sequence

    b = GraphBuilder()
    b.add_input("ids", "int32", (None, None))
    b.set_output("output", b.op("Cast", "ids", dtype="float32"))
    graph = b.build()
    good = {"axes": [["ids", 1, 8, 0]], "outputs": [["output", 1, "ids", 1]], "pad": True}
    assert check_sequence(good, graph).axes == {"ids": {1: (8, 0)}}
    for bad in (None, {**good, "pad": 1}, {**good, "axes": []}, {**good, "axes": [["ids", 2, 8, 0]]},
                {**good, "axes": [["ids", 1, 0, 0]]}, {**good, "outputs": [["nope", 1, "ids", 1]]},
                {**good, "outputs": [["output", 1, "ids", [1]]]}):
        with pytest.raises(MLEFormatError, match="sequence"):
            check_sequence(bad, graph)


# --- timm ------------------------------------------------------------------------------------


def _timm():
    """Import timm with a stand-in torchvision (see the module docstring)."""
    if "timm" in sys.modules:
        return sys.modules["timm"]
    if importlib.util.find_spec("timm") is None:
        pytest.skip("timm is not installed")

    def missing(name: str):
        def init(self, *args, **kwargs):
            raise RuntimeError(f"{name} is not available (torchvision stand-in)")

        class Meta(type):
            def __getattr__(cls, attr):
                if attr.startswith("__"):
                    raise AttributeError(attr)
                return missing(f"{name}.{attr}")

        return Meta(name.rsplit(".", 1)[-1], (), {"__init__": init})

    class StandIn:
        def find_spec(self, name, path=None, target=None):
            if name == "torchvision" or name.startswith("torchvision."):
                return importlib.machinery.ModuleSpec(name, self, is_package=True)
            return None

        def create_module(self, spec):
            module = types.ModuleType(spec.name)
            module.__path__ = []

            def getattr_(attr, _name=spec.name):
                if attr.startswith("__"):
                    raise AttributeError(attr)
                return missing(f"{_name}.{attr}")

            module.__getattr__ = getattr_
            return module

        def exec_module(self, module):
            pass

    def drop_torchvision():
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]

    try:
        import torchvision  # noqa: F401  a working torchvision needs no stand-in
    except Exception:
        drop_torchvision()
        finder = StandIn()
        sys.meta_path.insert(0, finder)
        try:
            import timm  # noqa: F401  imported with the stand-in on the path
        finally:  # timm keeps what it imported; nothing else in this process sees the stand-in
            sys.meta_path.remove(finder)
            drop_torchvision()
    return pytest.importorskip("timm")


def check_timm(name: str, tmp_path, size: int = 32, **kwargs) -> float:
    timm = _timm()
    torch.manual_seed(0)
    module = timm.create_model(name, pretrained=False, num_classes=7, **kwargs).eval()
    with torch.no_grad():
        for mod in module.modules():  # random statistics, so a wrong channel layout shows
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
        for p in module.parameters():  # timm zero-initialises some heads and layer scales
            if not p.any():
                p.normal_(0.0, 0.1)
    x = rng.standard_normal((3, 3, size, size)).astype(np.float32)
    m = _export_check(module, x, tmp_path)
    worst = 0.0
    for batch in (1, 3):
        xb = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
        worst = max(worst, _rel_error(m.predict(xb), _torch(module, [xb])))
    assert worst <= 1e-4, (name, worst)
    return worst


def test_timm_resnet(tmp_path):
    check_timm("resnet10t", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name,size,kwargs", [
    ("resnet18", 64, {}),
    ("mobilenetv3_small_050", 64, {}),
    ("efficientnet_b0", 64, {}),
    ("convnext_atto", 64, {}),  # AdaptiveAvgPool2d decomposes to as_strided
    ("regnetx_002", 64, {}),
    ("vit_tiny_patch16_224", 32, {"img_size": 32}),
    ("deit_tiny_patch16_224", 32, {"img_size": 32}),
    ("mixer_s16_224", 32, {"img_size": 32}),
])
def test_timm(name, size, kwargs, tmp_path):
    check_timm(name, tmp_path, size, **kwargs)
