"""Ops for kernel machines, one-vs-one heads and naive Bayes likelihoods.

- ``KernelExpansion``: ``sum_s K(x, sv_s) * coef[s, :]`` over stored support
  vectors, chunked so no [batch, n_support_vectors] array larger than a fixed
  budget is ever built;
- ``OvoVote`` / ``OvoToOvr``: libsvm's one-vs-one voting and scikit-learn's
  ``_ovr_decision_function``;
- ``SVCProbability``: libsvm's Platt-scaled pairwise probabilities coupled by
  the iterative method of Wu, Lin and Weng (2004), with libsvm's stopping rule;
- ``LogisticLogProba``, ``ModifiedHuberProba``: probability heads of linear models;
- ``GaussianJointLogLikelihood``, ``CategoricalJointLogLikelihood``: naive
  Bayes joint log-likelihoods.

``KernelExpansion`` computes in float64 inside the op; the others in float32
with full-precision matrix products.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..format.graph import Node
from .ops_core import EXP_OVERFLOW_64, float64_scope, joined, wide
from .ops_distance import KERNEL_PARAMS
from .registry import Attr, register_rule

_N_CLASSES = {"n_classes": Attr("int", lo=2)}


def _check_pairs(node: Node, shapes, budget: int) -> None:
    """The [pairs, classes] vote matrices must fit the model's bound."""
    k = node.attrs["n_classes"]
    if k * (k - 1) // 2 * k > budget:
        raise ValueError(f"n_classes={k} needs {k * (k - 1) // 2 * k} vote entries, over this model's bound of {budget}")

_HIGHEST = jax.lax.Precision.HIGHEST

#: Largest [batch, support-vector chunk] kernel block KernelExpansion builds (elements).
KERNEL_BLOCK_ELEMENTS = 1 << 22


def _kernel_block(x, xx, sv, kind: str, gamma: float, coef0: float, degree: int):
    """Kernel values [B, C] between rows ``x`` and support vectors ``sv`` [C, F]."""
    dot = jnp.matmul(x, sv.T, precision=_HIGHEST)
    if kind == "linear":
        return dot
    if kind == "poly":
        return jax.lax.integer_pow(gamma * dot + coef0, degree)
    if kind == "sigmoid":
        return jnp.tanh(gamma * dot + coef0)
    ss = jnp.sum(sv * sv, axis=1)
    d2 = jnp.maximum(xx[:, None] + ss[None, :] - 2.0 * dot, 0.0)
    return jnp.exp(-gamma * d2)


@register_rule("KernelExpansion", attrs={"kernel": Attr("str", choices=("linear", "poly", "rbf", "sigmoid")), **KERNEL_PARAMS})
def _kernel_expansion(node: Node, x, sv, coef, coef_lo=None, bias=None):
    """``out[b, m] = sum_s K(x[b], sv[s]) * coef[s, m] (+ bias[m])`` → [B, M].

    Attrs: ``kernel`` (``"linear"``: ``x·s``; ``"poly"``: ``(gamma x·s +
    coef0)^degree`` with integer ``degree``; ``"rbf"``: ``exp(-gamma |x-s|²)``;
    ``"sigmoid"``: ``tanh(gamma x·s + coef0)``), ``gamma``, ``coef0``,
    ``degree``. Computed in float64 inside the op and rounded once (kernel sums
    cancel); optional inputs: ``coef_lo``, the float32 remainder of float64
    coefficients, and ``bias`` [2, M], a float64 intercept as a float32 hi, lo
    pair. For ``rbf`` both sides are first centred on the support vectors'
    mean (distances do not change). Support vectors are processed in chunks so
    that each kernel block holds at most ``KERNEL_BLOCK_ELEMENTS`` values.
    """
    a = node.attrs
    kind, gamma, coef0, degree = a["kernel"], float(a["gamma"]), float(a["coef0"]), int(a["degree"])
    dtype = x.dtype
    with float64_scope():
        x, sv = wide(x, sv)
        coef = coef.astype(jnp.float64) if coef_lo is None else joined(coef, coef_lo)
        out = _expansion(x, sv, coef, kind, gamma, coef0, degree)
        if bias is not None:
            out = out + joined(bias[0], bias[1])[None, :]
        return out.astype(dtype)


def _expansion(x, sv, coef, kind: str, gamma: float, coef0: float, degree: int):
    """The kernel sum of :func:`_kernel_expansion` in the dtype of its arguments, chunked over support vectors."""
    if kind == "rbf":
        center = jnp.mean(sv, axis=0)
        x, sv = x - center, sv - center
    xx = jnp.sum(x * x, axis=1)
    n_sv = sv.shape[0]
    chunk = max(1, min(n_sv, KERNEL_BLOCK_ELEMENTS // max(1, x.shape[0])))
    if chunk >= n_sv:
        k = _kernel_block(x, xx, sv, kind, gamma, coef0, degree)
        return jnp.matmul(k, coef, precision=_HIGHEST)
    n_chunks = -(-n_sv // chunk)
    pad = n_chunks * chunk - n_sv
    sv_c = jnp.pad(sv, ((0, pad), (0, 0))).reshape(n_chunks, chunk, sv.shape[1])
    coef_c = jnp.pad(coef, ((0, pad), (0, 0))).reshape(n_chunks, chunk, coef.shape[1])

    def step(acc, block):
        s, c = block
        k = _kernel_block(x, xx, s, kind, gamma, coef0, degree)
        return acc + jnp.matmul(k, c, precision=_HIGHEST), None

    init = jnp.zeros((x.shape[0], coef.shape[1]), dtype=x.dtype)
    return jax.lax.scan(step, init, (sv_c, coef_c))[0]


def _pair_matrices(n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One-hot [P, K] matrices of the first and second class of each one-vs-one pair (libsvm order)."""
    pairs = [(i, j) for i in range(n_classes) for j in range(i + 1, n_classes)]
    first = np.zeros((len(pairs), n_classes), np.float32)
    second = np.zeros((len(pairs), n_classes), np.float32)
    for p, (i, j) in enumerate(pairs):
        first[p, i] = 1.0
        second[p, j] = 1.0
    return first, second


@register_rule("OvoVote", attrs=_N_CLASSES, check=_check_pairs)
def _ovo_vote(node: Node, dec):
    """libsvm's vote: pair (i, j) with decision > 0 votes for i, else j; label = first class with most votes (int32).

    ``dec`` is [B, P] in libsvm's pair order (0,1), (0,2), ..., (1,2), ...; attr ``n_classes``.
    """
    first, second = _pair_matrices(int(node.attrs["n_classes"]))
    pos = (dec > 0).astype(dec.dtype)
    votes = jnp.matmul(pos, first) + jnp.matmul(1.0 - pos, second)
    return jnp.argmax(votes, axis=1).astype(jnp.int32)


@register_rule("OvoToOvr", attrs=_N_CLASSES, check=_check_pairs)
def _ovo_to_ovr(node: Node, dec):
    """scikit-learn's ``_ovr_decision_function(dec < 0, -dec, n_classes)`` → [B, K].

    Votes (pair (i, j) votes i when ``dec >= 0``, else j) plus ``s / (3 (|s| + 1))``
    where ``s[k]`` sums ``dec`` of pairs whose first class is k minus those whose second is k.
    """
    first, second = _pair_matrices(int(node.attrs["n_classes"]))
    neg = (dec < 0).astype(dec.dtype)
    votes = jnp.matmul(1.0 - neg, first) + jnp.matmul(neg, second)
    conf = jnp.matmul(dec, first - second, precision=_HIGHEST)
    return votes + conf / (3.0 * (jnp.abs(conf) + 1.0))


@register_rule("SVCProbability", attrs=_N_CLASSES, check=_check_pairs)
def _svc_probability(node: Node, dec, prob_a, prob_b):
    """libsvm's ``svm_predict_probability`` for C-SVC / nu-SVC → [B, K].

    Pairwise ``r_ij = clip(1 / (1 + exp(dec_k A_k + B_k)), 1e-7, 1 - 1e-7)``,
    ``r_ji = 1 - r_ij``, then libsvm's ``multiclass_probability`` (Wu, Lin and
    Weng's second method) with ``Q_tt = sum_j r_jt²``, ``Q_tj = -r_jt r_tj``:
    start from ``p = 1/K``; each iteration (at most ``max(100, K)``) stops a row
    once ``max_t |(Qp)_t - pᵀQp| < 0.005 / K``, otherwise updates each ``p_t``
    in turn to ``p_t + (pᵀQp - (Qp)_t) / Q_tt`` and renormalises ``p`` to sum 1.
    ``dec`` is [B, P] in libsvm sign and pair order; attr ``n_classes``.

    The iterates are libsvm's, rewritten without cancellation so that small
    probabilities keep float32 relative accuracy: with ``S_t = sum_{j≠t}
    r_jt r_tj p_j`` and ``pᵀQp = sum_{i<j} (r_ji p_i - r_ij p_j)²``, the update
    is ``p_t ← (pᵀQp + S_t) / D`` and ``p_j ← p_j Q_tt / D`` (j ≠ t) where
    ``D = Q_tt sum_{j≠t} p_j + S_t + pᵀQp``.
    """
    k = int(node.attrs["n_classes"])
    rows = dec.shape[0]
    f_ab = dec * prob_a + prob_b
    # r_ji = 1 - r_ij, evaluated as its own sigmoid so small values keep float32 accuracy.
    r_ij = jnp.clip(jax.nn.sigmoid(-f_ab), 1e-7, 1.0 - 1e-7)
    r_ji = jnp.clip(jax.nn.sigmoid(f_ab), 1e-7, 1.0 - 1e-7)
    first, second = _pair_matrices(k)
    ii, jj = np.argmax(first, axis=1), np.argmax(second, axis=1)
    r = jnp.zeros((rows, k, k), dec.dtype).at[:, ii, jj].set(r_ij).at[:, jj, ii].set(r_ji)
    rt = jnp.swapaxes(r, 1, 2)  # rt[b, t, j] = r[b, j, t]
    cross = rt * r  # r_jt r_tj (0 on the diagonal)
    q_diag = jnp.sum(r * r, axis=1)  # Q_tt
    q = jnp.eye(k, dtype=dec.dtype) * q_diag[:, None, :] - cross
    eps = 0.005 / k
    max_iter = max(100, k)

    def pqp_of(p):
        v = r_ji * p[:, ii] - r_ij * p[:, jj]
        return jnp.sum(v * v, axis=1)

    def update(t, state):
        p, active = state
        pqp = pqp_of(p)
        s_t = jnp.sum(cross[:, t, :] * p, axis=1)
        others = jnp.arange(k) != t
        rest = jnp.sum(jnp.where(others[None, :], p, 0.0), axis=1)
        qtt = q_diag[:, t]
        d = qtt * rest + s_t + pqp
        new = jnp.where(others[None, :], p * (qtt / d)[:, None], ((pqp + s_t) / d)[:, None])
        return jnp.where(active[:, None], new, p), active

    def body(state):
        it, p, active = state
        qp = jnp.einsum("btj,bj->bt", q, p, precision=_HIGHEST)
        active = active & (jnp.max(jnp.abs(qp - pqp_of(p)[:, None]), axis=1) >= eps)
        p = jax.lax.fori_loop(0, k, update, (p, active))[0]
        return it + 1, p, active

    def cond(state):
        it, _, active = state
        return (it < max_iter) & jnp.any(active)

    p0 = jnp.full((rows, k), 1.0 / k, dec.dtype)
    return jax.lax.while_loop(cond, body, (0, p0, jnp.ones((rows,), bool)))[1]


@register_rule("LogisticLogProba")
def _logistic_log_proba(node: Node, d):
    """Log-probabilities of scikit-learn's one-vs-rest ``_predict_proba_lr`` for [B, K] decisions.

    scikit-learn computes ``p_k = expit(d_k)`` in float64 and divides by the row
    sum: here ``log p_k - log sum_j p_j``, with ``log p_k = -inf`` where float64
    ``expit`` underflows (``d < -709.78``), and uniform rows where every
    ``p_k`` does. (Binary models use ``LogisticPairFloat64``.)
    """
    log_p = jnp.where(d < -EXP_OVERFLOW_64, -jnp.inf, jax.nn.log_sigmoid(d))
    all_zero = jnp.all(jnp.isneginf(log_p), axis=1, keepdims=True)
    return jnp.where(all_zero, -jnp.log(float(d.shape[1])), jax.nn.log_softmax(jnp.where(all_zero, 0.0, log_p), axis=1))


@register_rule("ModifiedHuberProba")
def _modified_huber_proba(node: Node, d):
    """SGDClassifier(loss="modified_huber") probabilities: ``p = (clip(d, -1, 1) + 1) / 2``.

    ``d`` of shape [B] (binary) gives ``[1 - p, p]``; [B, K] gives ``p`` divided
    by its row sum, or uniform ``1/K`` where that sum is 0.
    """
    p = (jnp.clip(d, -1.0, 1.0) + 1.0) / 2.0
    if p.ndim == 1:
        return jnp.stack([1.0 - p, p], axis=1)
    s = jnp.sum(p, axis=1, keepdims=True)
    return jnp.where(s == 0, 1.0 / p.shape[1], p / jnp.where(s == 0, 1.0, s))


@register_rule("GaussianJointLogLikelihood")
def _gaussian_jll(node: Node, x, theta, inv_var, bias):
    """``jll[b, k] = bias[k] - 0.5 * sum_f (x[b, f] - theta[k, f])² * inv_var[k, f]`` → [B, K].

    Differences are taken directly (no expansion), one class at a time.
    """
    def one(args):
        t, iv = args
        d = x - t
        return jnp.sum(d * d * iv, axis=1)

    sq = jax.lax.map(one, (theta, inv_var))
    return bias[None, :] - 0.5 * sq.T


@register_rule("CategoricalJointLogLikelihood")
def _categorical_jll(node: Node, x, table, offsets, n_categories):
    """``jll[b, :] = sum_f table[offsets[f] + int(x[b, f]), :]`` → [B, K].

    ``x`` holds category codes as floats, truncated toward zero (numpy's
    ``astype(int)``). A code outside ``[0, n_categories[f])`` (or NaN)
    contributes 0 for every class: that feature is marginalised out.
    """
    n_cat = n_categories.astype(x.dtype)
    valid = (x > -1.0) & (x < n_cat[None, :])
    code = jnp.where(valid, x, 0.0).astype(jnp.int32)
    rows = jnp.take(table, code + offsets[None, :], axis=0)
    return jnp.sum(jnp.where(valid[:, :, None], rows, 0.0), axis=1)
