"""Core tensor ops: arithmetic, matmul, activations, heads.

Heads that must reproduce scikit-learn's float64 rounding where float32 would
differ visibly (``LogisticPairFloat64``, ``LogSoftmaxFloat64``) say so.

Every rule computes in the dtype of its inputs (float32 for models exported
by mlejax). Matrix products use full float32 precision on every backend, so
GPUs do not silently drop to TF32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..format.graph import Node
from .registry import Attr, register_rule

#: An axis attribute: an int into the full shape, negative from the end.
AXIS = Attr("int", -1, lo=-64, hi=63)
#: dtype names a Cast may produce.
DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "bfloat16",
          "float32", "float64")

_HIGHEST = jax.lax.Precision.HIGHEST


@register_rule("MatMulAdd")
def _matmul_add(node: Node, x, w, b=None):
    """``x @ w + b``; ``w`` is [in, out]."""
    y = jnp.matmul(x, w, precision=_HIGHEST)
    return y if b is None else y + b


@register_rule("MatMul")
def _matmul(node: Node, a, b):
    return jnp.matmul(a, b, precision=_HIGHEST)


def binary_rule(fn):
    """A rule applying ``fn(a, b)`` elementwise with numpy broadcasting (shared by op families)."""

    def rule(node: Node, a, b):
        return fn(a, b)

    rule.__doc__ = f"Elementwise {getattr(fn, '__name__', fn)} with numpy broadcasting."
    return rule


for _name, _fn in {
    "Add": jnp.add,
    "Sub": jnp.subtract,
    "Mul": jnp.multiply,
    "Div": jnp.divide,
    "Max": jnp.maximum,
    "Min": jnp.minimum,
    "Pow": jnp.power,
}.items():
    register_rule(_name)(binary_rule(_fn))


def _unary(fn):
    def rule(node: Node, x):
        return fn(x)

    return rule


for _name, _fn in {
    "Identity": lambda x: x,
    "LogSigmoid": jax.nn.log_sigmoid,
    "Relu": jax.nn.relu,
    "Tanh": jnp.tanh,
    "Sigmoid": jax.nn.sigmoid,
    "Exp": jnp.exp,
    "Log": jnp.log,
    "Sqrt": jnp.sqrt,
    "Abs": jnp.abs,
    "Neg": jnp.negative,
    "IsNaN": jnp.isnan,
}.items():
    register_rule(_name)(_unary(_fn))


@register_rule("Softmax", attrs={"axis": AXIS})
def _softmax(node: Node, x):
    return jax.nn.softmax(x, axis=node.attrs["axis"])


@register_rule("LogSoftmax", attrs={"axis": AXIS})
def _log_softmax(node: Node, x):
    return jax.nn.log_softmax(x, axis=node.attrs["axis"])


@register_rule("ArgMax", attrs={"axis": AXIS})
def _argmax(node: Node, x):
    """Index of the first maximum along ``axis`` (numpy's tie rule), as int32."""
    return jnp.argmax(x, axis=node.attrs["axis"]).astype(jnp.int32)


@register_rule("Greater", attrs={"threshold": Attr("number", 0.0)})
def _greater(node: Node, x):
    """``x > threshold`` as int32 (binary labels from a decision value or a probability)."""
    return (x > node.attrs["threshold"]).astype(jnp.int32)


@register_rule("GreaterEqual", attrs={"threshold": Attr("number", 0.0)})
def _greater_equal(node: Node, x):
    """``x >= threshold`` (attr, default 0) as int32; NaN gives 0."""
    return (x >= node.attrs["threshold"]).astype(jnp.int32)


def _column(z):
    """``z`` of shape [B] or [B, 1] as [B, 1], with no reshape of the batch (static apart from a symbolic batch)."""
    return z if z.ndim == 2 else jax.lax.broadcast_in_dim(z, (z.shape[0], 1), (0,))


@register_rule("TwoClassProba")
def _two_class_proba(node: Node, p):
    """Stack ``[1 - p, p]`` from the positive-class probability ``p`` of shape [B] or [B, 1]."""
    p = _column(p)
    return jnp.concatenate([1.0 - p, p], axis=1)


@register_rule("NormalizeRows", attrs={"norm": Attr("str", "l1", choices=("l1", "l2", "max")), "tiny": Attr("number", 0.0)})
def _normalize_rows(node: Node, x):
    """Divide each row by its ``norm`` (``l1``, ``l2`` or ``max`` of absolute values).

    Rows whose norm is 0 or below attr ``tiny`` (default 0) are left unchanged:
    scikit-learn's ``normalize`` passes ``tiny = 10 * eps``.
    """
    norm = node.attrs["norm"]
    if norm == "l1":
        d = jnp.sum(jnp.abs(x), axis=1, keepdims=True)
    elif norm == "l2":
        d = jnp.sqrt(jnp.sum(x * x, axis=1, keepdims=True))
    else:
        d = jnp.max(jnp.abs(x), axis=1, keepdims=True)
    return x / jnp.where((d == 0) | (d < node.attrs["tiny"]), 1.0, d)


@register_rule("Squeeze", attrs={"axis": Attr("int", lo=-64, hi=63)})
def _squeeze(node: Node, x):
    return jnp.squeeze(x, axis=node.attrs["axis"])


@register_rule("Reshape", attrs={"shape": Attr("ints", lo=-1)})
def _reshape(node: Node, x):
    """Reshape keeping the batch dimension: ``shape`` excludes it."""
    return x.reshape((x.shape[0], *node.attrs["shape"]))


@register_rule("Concat", attrs={"axis": AXIS})
def _concat(node: Node, *xs):
    return jnp.concatenate(xs, axis=node.attrs["axis"])


@register_rule("Take", attrs={"axis": Attr("int", 1, lo=-64, hi=63)})
def _take(node: Node, x, indices):
    """Select along ``axis`` (columns by default) by stored indices."""
    return jnp.take(x, indices, axis=node.attrs["axis"])


@register_rule("Cast", attrs={"dtype": Attr("str", choices=DTYPES)})
def _cast(node: Node, x):
    return x.astype(node.attrs["dtype"])


#: float64 ``exp(-x)`` overflows past this, so ``1 / (1 + exp(-x))`` is exactly 0 below ``-EXP_OVERFLOW_64``.
EXP_OVERFLOW_64 = 709.782712893384
#: float64 ``exp(x)`` is exactly 0 below this.
_EXP_UNDERFLOW = -745.1332191019412


@register_rule("LogisticPairFloat64", attrs={"log": Attr("bool", False)})
def _logistic_pair_float64(node: Node, z):
    """``[1 - expit(z), expit(z)]`` as [B, 2] from ``z`` of shape [B] or [B, 1], or its log (attr ``log``),
    rounded as scikit-learn's float64 computes it.

    scikit-learn computes ``1 - expit(z)`` in float64 with
    ``expit(z) = 1 / (1 + exp(-z))``: ``1 + exp(-z)`` lands on the 2**-52 grid
    above 1, so for ``z > 0`` the first column is ``round(exp(-z) * 2**52) / 2**52``
    (exactly 0 past ``z ≈ 36.7``, where the log is ``-inf``). That grid is
    coarser than float32 only where ``exp(-z) < 2**-28``; there it is
    reproduced (scalings by powers of two are exact), elsewhere the first
    column is ``expit(-z)``, free of the cancellation of ``1 - p``. ``expit(z)``
    is exactly 0 below ``z ≈ -709.78``. Logs are taken without float32
    underflow (``log_sigmoid``).
    """
    z = _column(z)
    grid = jnp.asarray(2.0**52, z.dtype)
    e = jnp.exp(-jnp.maximum(z, 0.0))
    coarse = (z > 0) & (e * grid < 2.0**24)
    q_coarse = jnp.round(e * grid) / grid
    if node.attrs["log"]:
        first = jnp.where(coarse, jnp.log(q_coarse), jax.nn.log_sigmoid(-z))
        second = jnp.where(z < -EXP_OVERFLOW_64, -jnp.inf, jax.nn.log_sigmoid(z))
    else:
        first = jnp.where(coarse, q_coarse, jax.nn.sigmoid(-z))
        second = jax.nn.sigmoid(z)
    return jnp.concatenate([first, second], axis=1)


@register_rule("LogSoftmaxFloat64")
def _log_softmax_float64(node: Node, x):
    """``log(softmax(x))`` over the last axis, ``-inf`` where float64 ``exp(x - max)`` underflows to 0.

    This is scikit-learn's ``np.log(softmax(x))``: finite down to about -745, then ``-inf``.
    """
    shifted = x - jnp.max(x, axis=-1, keepdims=True)
    return jnp.where(shifted < _EXP_UNDERFLOW, -jnp.inf, jax.nn.log_softmax(x, axis=-1))


# --- float64 inside one op ------------------------------------------------------------------
#
# Outputs that are sums of many terms which cancel (linear models on unscaled data, joint
# log-likelihoods, kernel expansions) lose more than the parity bound when accumulated in
# float32. The rules below compute in float64 inside the op and round once at its end; the
# rest of the program, and every value passed between ops, stays float32.


def float64_scope():
    """Context in which a rule may build float64 values (``jax.enable_x64``); round back before returning."""
    return jax.enable_x64(True)


def wide(*arrays):
    """float64 copies of float32 arrays (inside :func:`float64_scope`)."""
    out = tuple(jnp.asarray(a).astype(jnp.float64) for a in arrays)
    return out if len(out) != 1 else out[0]


def joined(hi, lo):
    """The float64 value of a float32 ``hi + lo`` pair (inside :func:`float64_scope`)."""
    return hi.astype(jnp.float64) + lo.astype(jnp.float64)


def _log_softmax_64(y):
    """float64 ``log(softmax(y))`` over the last axis: ``-inf`` exactly where float64 ``exp`` underflows."""
    shifted = y - jnp.max(y, axis=-1, keepdims=True)
    return shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=-1, keepdims=True))


@register_rule("LinearFloat64", attrs={"head": Attr("str", "identity", choices=("identity", "log_softmax", "softmax"))})
def _linear_float64(node: Node, x, w_hi, w_lo, b_hi, b_lo):
    """``head(x @ (w_hi + w_lo) + (b_hi + b_lo))`` computed in float64, rounded to ``x``'s dtype once.

    ``w`` [in, out] and ``b`` [out] are float64 parameters stored as float32
    ``hi + lo`` pairs (48 significant bits). ``head``: ``identity``,
    ``log_softmax`` (scikit-learn's ``log(softmax)``: ``-inf`` where float64
    underflows) or ``softmax`` — heads of large, cancelling sums such as
    naive Bayes joint log-likelihoods, taken before the rounding.
    """
    dtype = x.dtype
    with float64_scope():
        y = jnp.matmul(wide(x), joined(w_hi, w_lo), precision=_HIGHEST) + joined(b_hi, b_lo)
        head = node.attrs["head"]
        if head == "log_softmax":
            y = _log_softmax_64(y)
        elif head == "softmax":
            y = jnp.exp(_log_softmax_64(y))
        return y.astype(dtype)
