"""Crafted files (valid checksums, unsigned) must end in an MLEError at load, in bounded time and memory.

Issue 14, section 2: amplification in metadata validation, string label widths,
undeclared or ill-typed node attributes and input counts, attributes that size
work (tree depth, shape specs), scrypt parameters and failed allocations.
"""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

import msgpack
import numpy as np
import pytest

import mlejax as mle
from mlejax.format import MLEFormatError, read_mle, write_mle
from mlejax.format.graph import Node
from mlejax.lowering.registry import UndeclaredAttributeError, get_rule, registered_ops

from mle_bytes import DATA, GRAPH, build, sections_of


def _graph(*nodes: dict, output: str = "y", width: int = 3) -> dict:
    return {
        "inputs": [{"name": "x", "dtype": "float32", "shape": [None, width], "feature_names": None}],
        "nodes": list(nodes),
        "outputs": {"output": output},
    }


def _node(op: str, inputs: list[str], outputs: list[str] | None = None, version: int = 1, **attrs: Any) -> dict:
    return {"op": op, "version": version, "name": f"n.{op}", "inputs": inputs, "outputs": outputs or ["y"], "attrs": attrs}


def _write(tmp_path, graph: dict, metadata: dict | None = None, **tensors: np.ndarray) -> str:
    path = str(tmp_path / "m.mle")
    write_mle(path, metadata={"methods": {"predict": "output"}, **(metadata or {})}, graph=graph, tensors=tensors)
    return path


def _refused(path: str, match: str) -> MLEFormatError:
    """Refused at load with every check on (shapes traced at load, not at the first call)."""
    with pytest.raises(MLEFormatError, match=match) as info:
        mle.load_model(path, check_shapes=True)
    return info.value


# --------------------------------------------------------------------------- metadata validation cost


def _nested_long_keys() -> Any:
    key = "k" * 100_000
    value: Any = [None] * 3000
    for _ in range(10):
        value = {key: value}
    return value


@pytest.mark.parametrize("value", [_nested_long_keys(), [None] * 300_000], ids=["nested-long-keys", "flat"])
def test_metadata_validates_in_linear_memory(value):
    """The issue's cases cost 3.1 GB (nested) and +480 MB (flat, 4 MB) when a path string was built per element."""
    from mlejax.format._plain import unpack_plain

    data = msgpack.packb({"meta": value}, use_bin_type=True)
    start = time.perf_counter()
    unpack_plain(data, "metadata")
    assert time.perf_counter() - start < 5.0
    tracemalloc.start()
    unpack_plain(data, "metadata")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 16 * len(data) + (4 << 20), peak  # the decoded objects and a stack as deep as the nesting


def test_plain_error_names_the_path_only_then():
    from mlejax.format._plain import _check_plain

    with pytest.raises(ValueError, match=r"metadata\['a'\]\[1\]\['b'\]: int 36893488147419103232 is outside"):
        _check_plain({"a": [None, {"b": 2**65}]}, "metadata")


# --------------------------------------------------------------------------- class labels


def test_wide_string_label_dtype_is_bounded_by_the_labels(tmp_path):
    graph = _graph(_node("ArgMax", ["x"], ["label"], axis=-1), output="label")
    graph["outputs"] = {"label": "label"}
    path = _write(tmp_path, graph, {"methods": {"predict": "label"}, "classes": {"dtype": "<U100000000", "values": ["a", "bb", "c"]}})
    tracemalloc.start()
    model = mle.load_model(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert model.classes_.dtype == np.dtype("<U2") and list(model.classes_) == ["a", "bb", "c"]
    assert peak < 256 << 20


# --------------------------------------------------------------------------- declared attributes and arity


@pytest.mark.parametrize(
    "node, match",
    [
        (_node("Softmax", ["x"], axis="1"), r"node 'n.Softmax' \(op Softmax\): attribute 'axis': expected an int, found '1'"),
        (_node("Squeeze", ["x"]), r"attribute 'axis' is required"),
        (_node("Pad", ["x"], pads=[[0, 0], [1, 1]], mode="x"), r"attribute 'mode': expected one of \['constant', 'reflect', 'edge', 'wrap'\], found 'x'"),
        (_node("ArgMax", ["x"], axis=2**40), r"attribute 'axis': expected an int in \[-64, 63\]"),
        (_node("MatMul", ["x"]), r"\(op MatMul\): expected 2 inputs, found 1"),
        (_node("Relu", ["x"], ["y", "z"]), r"expected 1 to 1 outputs, found 2"),
        (_node("Split", ["x"], ["y", "z"], axis=1, sizes=[3]), r"expected 1 to 1 outputs, found 2"),
        (_node("LSTM", ["x"], hidden_size=4), r"expected 4 or 6 inputs, found 1"),
        (_node("Slice", ["x"], axes=[1], starts=[0], stops=[2], steps=[0]), r"a slice step cannot be 0"),
        (_node("Iota", ["x"], shape=["B", 1 << 30], axis=1), r"makes 1073741824 elements per batch row, over this model's bound"),
        (_node("Tile", ["x"], reps=[1, 1 << 28]), r"reps .* elements per batch row"),
        (_node("Gelu", ["x"], approximate=True), r"attribute 'approximate': expected one of"),
    ],
)
def test_node_is_checked_against_its_declaration_at_load(tmp_path, node, match):
    _refused(_write(tmp_path, _graph(node, output=node["outputs"][0])), match)


def test_unused_undeclared_attributes_stay_out_of_the_rule():
    node = Node("Softmax", 1, "s", ("x",), ("y",), {"axis": 1, "extra": "ignored"})
    out = get_rule(node)(node, np.ones((2, 3), np.float32))
    np.testing.assert_allclose(np.asarray(out), np.full((2, 3), 1 / 3), rtol=1e-6)


def test_rule_reading_an_undeclared_attribute_fails():
    from mlejax.lowering import registry

    @registry.register_rule("TestReadsUndeclared", attrs={"a": registry.Attr("int", 0)})
    def _rule(node, x):
        return x * node.attrs["b"]

    try:
        node = Node("TestReadsUndeclared", 1, "t", ("x",), ("y",), {"b": 2})
        with pytest.raises(UndeclaredAttributeError, match="read attribute 'b', which it does not declare"):
            get_rule(node)(node, np.ones(2))
    finally:
        del registry._RULES[("TestReadsUndeclared", 1)]


def test_every_rule_declares_its_arity():
    for op, versions in registered_ops().items():
        for version in versions:
            spec = get_rule(Node(op, version, "n", (), ("y",), {}))
            lo, hi = spec.inputs
            assert 0 <= lo <= hi, (op, version, spec.inputs)


# --------------------------------------------------------------------------- attributes that size work


def _forest_file(tmp_path, max_depth: int) -> str:
    from sklearn.tree import DecisionTreeRegressor

    X = np.random.default_rng(0).standard_normal((40, 3)).astype(np.float32)
    path = str(tmp_path / "tree.mle")
    mle.export_model(DecisionTreeRegressor(max_depth=3, random_state=0).fit(X, X[:, 0]), path)
    with open(path, "rb") as fh:
        secs = sections_of(fh.read())
    for s in secs:
        if s[0] == GRAPH:
            graph = msgpack.unpackb(s[2])
            for n in graph["nodes"]:
                if "max_depth" in n["attrs"]:
                    n["attrs"]["max_depth"] = max_depth
            s[2] = msgpack.packb(graph, use_bin_type=True)
            s[3] = len(s[2])
    with open(path, "wb") as fh:
        fh.write(build(secs))
    return path


def test_tree_depth_is_bounded_by_the_node_count(tmp_path):
    path = _forest_file(tmp_path, 2**31 - 1)
    start = time.perf_counter()
    _refused(path, r"attribute 'max_depth': 2147483647 is more than the \d+ stored tree nodes")
    assert time.perf_counter() - start < 10


# --------------------------------------------------------------------------- scrypt and allocation


def test_scrypt_parameters_openssl_refuses_are_a_format_error(tmp_path):
    from mlejax.format.container import encrypt_file
    from mlejax.format.encryption import Encryption
    from mle_bytes import ENCRYPTION

    path = _write(tmp_path, _graph(_node("Relu", ["x"])))
    encrypt_file(path, Encryption.with_password("pw", n=2**4, r=1, p=1))
    with open(path, "rb") as fh:
        secs = sections_of(fh.read())
    for s in secs:
        if s[0] == ENCRYPTION:
            params = msgpack.unpackb(s[2])
            params["kdf"]["n"] = 2**20  # 128 MiB at r=1: OpenSSL requires n < 2**(16*r)
            s[2] = msgpack.packb(params, use_bin_type=True)
            s[3] = len(s[2])
    with pytest.raises(MLEFormatError, match=r"scrypt parameters n=1048576, r=1, p=1 are invalid: n must be a power of two with 2 <= n < 2\*\*\(16\*r\)"):
        read_mle(build(secs, flags=2), password="pw")


_UNDER_LIMIT = """
import resource, sys
from mlejax.format import MLEFormatError, read_mle
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
try:
    read_mle(sys.argv[1], max_decompressed_bytes=8 << 30)
except MLEFormatError as e:
    print("MLEFormatError:", e)
"""


def test_failed_decompression_allocation_is_a_format_error(tmp_path):
    import subprocess
    import sys

    import zstandard

    frame = zstandard.ZstdCompressor(write_content_size=False).compress(b"\0" * 1000)
    raw_length = int(3.9 * (1 << 30))
    path = tmp_path / "bomb.mle"
    write_mle(path, metadata={}, graph={}, tensors={"w": np.zeros(4, np.float32)})
    secs = sections_of(path.read_bytes())
    secs[3] = [DATA, 1, frame, raw_length]  # zstd flag, a frame without content size
    path.write_bytes(build(secs))
    out = subprocess.run([sys.executable, "-c", _UNDER_LIMIT, str(path)], capture_output=True, text=True, timeout=120)
    assert f"tensor_data section: cannot allocate the {raw_length} bytes the section table declares" in out.stdout, out.stderr[-2000:]


@pytest.mark.parametrize("node", [_node("ArgMax", ["x"], ["label"]), _node("Greater", ["x"], ["label"])])
def test_classes_shorter_than_the_label_range(tmp_path, node):
    graph = _graph(node, output="label")
    graph["outputs"] = {"label": "label"}
    metadata = {"methods": {"predict": "label"}, "classes": {"dtype": "<i8", "values": [7]}}
    _refused(_write(tmp_path, graph, metadata), r"metadata.classes: 1 class labels, but graph output 'label' takes (3|2) values")


def test_output_size_is_bounded_at_load(tmp_path):
    # each Tile alone is within the bound; their product is 3 * 2048 * 1024 elements per row
    nodes = [_node("Tile", ["x"], ["h"], reps=[1, 2048]), {**_node("Tile", ["h"], reps=[1, 1024]), "name": "n.Tile2"}]
    _refused(_write(tmp_path, _graph(*nodes)), r"node 'n.Tile2' \(op Tile\): output 'y' has shape \[1, 6291456\] for one row, over this model's bound of 4194304")


def test_default_load_checks_declarations_and_defers_the_shape_trace(tmp_path):
    """Without check_shapes, declarations are still refused at load; a shape error is refused before the first compile."""
    with pytest.raises(MLEFormatError, match="attribute 'axis': expected an int"):
        mle.load_model(_write(tmp_path, _graph(_node("Softmax", ["x"], axis="1"))))
    model = mle.load_model(_write(tmp_path, _graph(_node("Softmax", ["x"], axis=5))))
    with pytest.raises(MLEFormatError, match=r"node 'n.Softmax' \(op Softmax\) cannot run on inputs of shapes"):
        model.predict(np.ones((2, 3), np.float32))
    graph = _graph(_node("ArgMax", ["x"], ["label"]), output="label")
    graph["outputs"] = {"label": "label"}
    metadata = {"methods": {"predict": "label"}, "classes": {"dtype": "<i8", "values": [7]}}
    model = mle.load_model(_write(tmp_path, graph, metadata))
    with pytest.raises(MLEFormatError, match="metadata.classes: 1 class labels"):
        model.predict(np.ones((2, 3), np.float32))


def test_shape_error_is_refused_at_load(tmp_path):
    _refused(_write(tmp_path, _graph(_node("Softmax", ["x"], axis=5))), r"node 'n.Softmax' \(op Softmax\) cannot run on inputs of shapes \[\(1, 3\)\]")
