"""The loaded model: validated file + lazily compiled program + sklearn-style API."""

from __future__ import annotations

import functools
import os
import time
import types
from typing import Any, Callable, Sequence

import jax.numpy as jnp
import numpy as np

from .format import read_mle
from .format.errors import InputError, MLEFormatError
from .format.graph import Graph, ValueInfo
from .format.policy import check_policy, signature_keys
from .host import HostEncoder, InputChecks
from .inspect import source_info
from .lowering import Program
from .lowering.program import DEFAULT_MAX_TILE, evaluate
from .lowering.seq_buckets import check_sequence
from .predict_options import BY_POSITION, CHECK_FINITE, PredictOptions, SharedProgram

__all__ = ["Model", "load_model", "METHOD_OUTPUTS"]

#: The model methods mlejax can expose, and the graph output each one reads.
METHOD_OUTPUTS = {
    "predict": ("label", "output"),
    "predict_proba": ("probabilities",),
    "predict_log_proba": ("log_probabilities",),
    "decision_function": ("decision",),
    "transform": ("transform",),
    "score_samples": ("score_samples",),
    "apply": ("leaf_index",),
}


def load_model(
    path: str | os.PathLike,
    device: Any = None,
    *,
    cache: Any = None,
    batch_buckets: str | Sequence[int] | None = "pow2",
    max_tile: int = DEFAULT_MAX_TILE,
    warmup: Sequence[int] | None = None,
    verify_signature: bool | None = None,
    public_key: Any = None,
    key: bytes | None = None,
    password: str | None = None,
    max_decompressed_bytes: int = 4 << 30,
    tree_strategy: str = "auto",
    check_finite: bool = True,
    check_shapes: bool = False,
    precision: str = "float32",
) -> "Model":
    """Open a ``.mle`` file: memory-map it, validate it, and return a :class:`Model`.

    Nothing is compiled until the first call (or ahead of time for the batch
    sizes in ``warmup``). No pickle and no training framework is imported.
    Order: signature (if verified) over the raw file, then checksums,
    decryption in memory, decoding, the model's access policy
    (:mod:`mlejax.format.policy`), and graph validation.

    Args:
      path: the ``.mle`` file.
      device: ``"cpu"``, ``"gpu"``, a ``jax.Device`` or ``None`` (JAX's default).
      cache: ``True`` (the process-wide :func:`mlejax.model_cache.default_cache`) or a
        :class:`mlejax.ModelCache`: reuse the model already loaded from the same
        content with the same options (see :mod:`mlejax.model_cache`). ``path``
        may also be ``registry://NAME@ALIAS`` or ``registry://NAME:VERSION`` (the
        default :class:`mlejax.registry.ModelRegistry`; the blob's sha256 is checked).
      batch_buckets: ``"pow2"`` pads batches to powers of two so a new batch
        size rarely recompiles; a list of sizes; or ``None`` for exact shapes.
      max_tile: batches above this many rows are run in tiles of this size.
      warmup: batch sizes to compile for now, for every method.
      verify_signature: ``True`` requires a valid Ed25519 signature by
        ``public_key`` (or a key listed in ``MLEJAX_TRUSTED_KEYS``); ``None``
        verifies when ``public_key`` is given or this machine requires
        signatures (``MLEJAX_REQUIRE_SIGNATURE=1`` or the security config);
        ``False`` skips it. Failures raise :class:`MLESecurityError`.
      public_key: Ed25519 public key(s): key object, raw 32 bytes, PEM or path.
      key, password: decrypt an encrypted file (32-byte AES key, or password).
      max_decompressed_bytes: refuse compressed files that would expand past this.
      tree_strategy: how tree ensembles are lowered: ``"auto"`` (a heuristic
        per forest and batch size; ``$MLEJAX_TREE_STRATEGY`` overrides it) or
        one of ``traversal``, ``perfect``, ``bitvector``, ``oblivious``,
        ``gemm`` (used where the forest allows it, else the heuristic's pick).
        All give the same results. See :mod:`mlejax.lowering.tree_strategies`.
      check_finite: raise :class:`InputError` on NaN or infinity in columns
        where the source model raises on them (recorded at export); ``False``
        skips the check (one pass over the input). Each method also takes
        ``check_finite=`` per call, and ``by_position=True`` when the columns
        of a plain array are already in ``feature_names_in_`` order (a model
        whose ColumnTransformer selects columns by name otherwise takes only
        a DataFrame, as scikit-learn does).
      check_shapes: trace every output's shapes now instead of before the
        first compilation (:meth:`mlejax.lowering.Program.check_shapes`): a
        graph that cannot run is refused at load. Loading always checks the
        container, metadata and every node against its op's declaration
        (attributes, arity, work bounds); this adds 1–20 ms.
      precision: ``"float32"`` (default) or ``"float64"``: the whole program
        runs in float64 — float inputs are taken (and converted) as float64,
        stored float tensors are widened, and float outputs come back float64.
        Scoped to this model: it is traced, compiled and run inside
        ``jax.enable_x64(True)``, and JAX's global x64 setting, hence every other
        model and JAX program of the process, is left as it is. Parameters that
        the exporter stores as float32 ``hi + lo`` pairs (linear models, mixtures,
        min-max scaling, ...) then carry about 48 bits, so such models match
        scikit-learn's float64 results to about 1e-12; a parameter stored as plain
        float32 keeps its float32 rounding (about 1e-7 relative).
    """
    if cache not in (None, False) or str(path).startswith("registry://"):
        options = {k: v for k, v in locals().items() if k not in ("path", "cache")}  # the arguments above
        from .model_cache import load_via

        return load_via(path, cache, **options)
    from . import __version__

    keys = signature_keys(verify_signature, public_key)
    mfile = read_mle(
        os.fspath(path), public_key=keys, key=key, password=password, max_decompressed_bytes=max_decompressed_bytes,
        lazy_tensors=True,  # tensor data is verified before its first use (trace, compile, run, inspection)
    )
    check_policy(mfile.metadata.get("policy"), runtime_version=__version__)
    model = Model(mfile, device=device, batch_buckets=batch_buckets, max_tile=max_tile, tree_strategy=tree_strategy,
                  precision=precision)
    model.check_finite = check_finite
    if check_shapes:
        model.program.check_shapes()
    for n in warmup or ():
        model.warmup(n)
    return model


class _Method:
    """A model method present only when the source model had it (like sklearn's ``available_if``)."""

    def __init__(self, fn: Callable) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.name = fn.__name__

    def __get__(self, obj: "Model | None", owner: type) -> Any:
        if obj is None:
            return self
        if self.name not in obj.methods:
            raise AttributeError(
                f"this model (exported from {obj.source_estimator}) has no {self.name}(); "
                f"it has: {', '.join(sorted(obj.methods))}"
            )
        return types.MethodType(self.fn, obj)


class Model:
    """A model loaded from a ``.mle`` file, run as compiled XLA programs.

    It mirrors its source's methods (``predict``, ``predict_proba``,
    ``predict_log_proba``, ``decision_function``, ``transform``,
    ``score_samples``) and sklearn's attributes (``classes_``,
    ``n_features_in_``, ``feature_names_in_``).
    """

    def __init__(
        self, mfile: Any, *, device: Any = None, batch_buckets: Any = "pow2", max_tile: int = DEFAULT_MAX_TILE,
        tree_strategy: str = "auto", precision: str = "float32",
    ) -> None:
        from .lowering.tree_strategies import STRATEGIES

        if precision not in ("float32", "float64"):
            raise ValueError(f"unknown precision {precision!r}; choose float32 or float64")
        if tree_strategy != "auto" and tree_strategy not in STRATEGIES:
            raise ValueError(f"unknown tree_strategy {tree_strategy!r}; choose from auto, {', '.join(STRATEGIES)}")
        self._file = mfile
        self.metadata: dict = mfile.metadata
        self.graph: Graph = Graph.from_dict(mfile.graph, set(mfile.tensors))
        self.methods: dict[str, str] = _check_methods(self.metadata, self.graph)
        #: outputs a method returns with the rows on another axis than the first (``metadata.batch_axis``)
        self._batch_axis = _check_batch_axis(self.metadata, self.graph)
        # None unless columns are encoded on the host (string categories, CatBoost hashes and CTRs)
        self._host = HostEncoder.from_metadata(self.metadata, mfile.tensors)
        self.classes_ = _decode_classes(self.metadata.get("classes"))
        first = self.graph.inputs[0]
        self.n_features_in_: int | None = first.shape[1] if len(first.shape) == 2 else None
        names = first.feature_names
        if self._host is not None:
            if self._host.width != self.n_features_in_:
                raise MLEFormatError(f"metadata.host_encoding: encodes {self._host.width} columns, the graph input has {self.n_features_in_}")
            self.n_features_in_, names = self._host.n_features, self._host.feature_names or names
        if names is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        self._checks = InputChecks.from_metadata(self.metadata, self.n_features_in_, names, self.source_estimator)
        #: default of the per-call ``check_finite=`` (see :func:`load_model`)
        self.check_finite = True
        self._options = PredictOptions(self.metadata, self.graph, mfile.tensors.specs)
        self.program = Program(
            self.graph, mfile.tensors, device=device, batch_buckets=batch_buckets, max_tile=max_tile,
            # an encrypted model's programs hold decrypted values: never in the on-disk compilation cache
            options={"tree_strategy": tree_strategy, "persistent_cache": not mfile.encrypted,
                     **({"precision": precision} if precision != "float32" else {})},
            sequence=check_sequence(self.metadata.get("sequence"), self.graph),
        )
        #: the dtype each graph input is converted to on the host (float inputs in float64 for ``precision="float64"``)
        self._input_dtypes = [_input_dtype(info, precision) for info in self.graph.inputs]
        if self.classes_ is not None:
            self.program.check_classes(len(self.classes_))
        self._ranged: dict[tuple[int, int], Program] = {}  # one Program per iteration range asked for
        # The call fast path (:meth:`_method_output`): a plain C-contiguous ndarray of the graph input's
        # dtype and shape goes straight to the program, where a model has one input and no host encoding.
        first_input = self.graph.inputs[0]
        plain = self._host is None and len(self.graph.inputs) == 1 and not (self._checks is not None and self._checks.by_name)
        self._direct = (self._input_dtypes[0], tuple(first_input.shape[1:]), len(first_input.shape)) if plain else None

    # --- description -----------------------------------------------------------------
    @property
    def source_estimator(self) -> str:
        """The source model's type as recorded at export (``metadata.source.estimator``), or "an unknown model"."""
        estimator = source_info(self.metadata).get("estimator")
        return "an unknown model" if estimator is None else str(estimator)

    @property
    def outputs(self) -> list[str]:
        """Names of every graph output, in ``run()`` order."""
        return list(self.graph.outputs)

    @property
    def device(self) -> Any:
        return self.program.device

    @property
    def tree_strategy(self) -> str:
        """The tree strategies compiled so far (``"strategy"`` or ``"node@batch=strategy, ..."``; ``""`` if none)."""
        choices = self.program.choices
        distinct = sorted(set(choices.values()))
        if len(distinct) <= 1:
            return distinct[0] if distinct else ""
        return ", ".join(f"{k}={v}" for k, v in sorted(choices.items()))

    def __repr__(self) -> str:
        return f"<mlejax.Model of {self.source_estimator}: methods {sorted(self.methods)}, device {self.device}>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from .display import mimebundle, model_html

        return mimebundle(self, model_html, include, exclude)

    # --- methods ---------------------------------------------------------------------
    # Every method takes the graph inputs positionally (optional ones, such as XGBoost's
    # ``base_margin``, may be left out) and the per-call options of :mod:`mlejax.predict_options`
    # by keyword: ``base_margin=`` and ``iteration_range=(begin, end)`` where the model has them.
    # Any other keyword raises TypeError naming the supported ones.
    @_Method
    def predict(self, X: Any, *more_inputs: Any, **options: Any) -> np.ndarray:
        """Labels (mapped to ``classes_``) or regression values, as the source model's ``predict``.

        ``options``: ``base_margin`` ([batch] or [batch, n_groups]: replaces the
        base score in margin space) and ``iteration_range=(begin, end)``, for
        models that have them (XGBoost).
        """
        return self._method_output("predict", (X, *more_inputs), options)

    @_Method
    def predict_proba(self, X: Any, *more_inputs: Any, **options: Any) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order (``options`` as :meth:`predict`)."""
        return self._method_output("predict_proba", (X, *more_inputs), options)

    @_Method
    def predict_log_proba(self, X: Any, *more_inputs: Any, **options: Any) -> np.ndarray:
        """Log of ``predict_proba`` (``options`` as :meth:`predict`)."""
        return self._method_output("predict_log_proba", (X, *more_inputs), options)

    @_Method
    def decision_function(self, X: Any, *more_inputs: Any, **options: Any) -> np.ndarray:
        """Decision values / raw margins, as the source model's ``decision_function`` (``options`` as :meth:`predict`)."""
        return self._method_output("decision_function", (X, *more_inputs), options)

    @_Method
    def transform(self, X: Any, *more_inputs: Any, **options: Any) -> np.ndarray:
        """Transformed features, as the source transformer's ``transform``."""
        return self._method_output("transform", (X, *more_inputs), options)

    @_Method
    def score_samples(self, X: Any, *more_inputs: Any, **options: Any) -> np.ndarray:
        """Per-row scores, as the source model's ``score_samples``."""
        return self._method_output("score_samples", (X, *more_inputs), options)

    @_Method
    def apply(self, X: Any, *more_inputs: Any, **options: Any) -> np.ndarray:
        """Leaf index of each row in each tree, as sklearn's ``apply`` (``pred_leaf`` in GBDT libraries).

        ``iteration_range=(0, end)`` (XGBoost models) gives the leaves of the
        trees of the first ``end`` iterations; a range must start at 0, as in XGBoost.
        """
        return self._method_output("apply", (X, *more_inputs), options, leaf=True)

    def run(self, inputs: Sequence[Any], **options: Any) -> list[np.ndarray]:
        """Every graph output for ``inputs`` (one array per graph input), in :attr:`outputs` order.

        Optional inputs (such as ``base_margin``) may be left off the end of
        ``inputs`` or given by keyword; ``iteration_range`` applies to every
        output (``leaf_index`` too, whatever its start). Labels are mapped to ``classes_``.
        """
        named, span = self._options.parse("run", self.outputs, options)
        arrays = self._prepare_all(inputs, named, options.get(CHECK_FINITE, self.check_finite), options.get(BY_POSITION, False))
        results = self._program(span).run(self.outputs, arrays)
        return [self._to_host(name, r) for name, r in zip(self.outputs, results)]

    def warmup(self, batch_size: int) -> None:
        """Compile every method's program for ``batch_size`` rows now."""
        arrays = [np.zeros((batch_size, *(1 if d is None else d for d in info.shape[1:])), _np_dtype(info)) for info in self.graph.inputs]
        for output in sorted(set(self.methods.values())):
            self.program.run([output], arrays)

    def benchmark(self, inputs: Sequence[Any], num_runs: int = 50, warmup: int = 3, method: str | None = None) -> dict:
        """Time ``method`` (default: ``predict``) on ``inputs``; return latency stats and throughput.

        The first call (which compiles) is reported separately as ``first_call_ms``.
        """
        method = method or ("predict" if "predict" in self.methods else sorted(self.methods)[0])
        if method not in self.methods:
            raise ValueError(f"unknown method {method!r}; this model has {sorted(self.methods)}")
        arrays = self._prepare_all(inputs)
        output = [self.methods[method]]
        start = time.perf_counter()
        self.program.run(output, arrays)
        first = time.perf_counter() - start
        for _ in range(warmup):
            self.program.run(output, arrays)
        times = []
        for _ in range(num_runs):
            start = time.perf_counter()
            self.program.run(output, arrays)
            times.append(time.perf_counter() - start)
        t = np.asarray(times) * 1e3
        rows = arrays[0].shape[0]
        return {
            "method": method,
            "batch_size": rows,
            "num_runs": num_runs,
            "first_call_ms": first * 1e3,
            "mean_time_ms": float(t.mean()),
            "p50_ms": float(np.percentile(t, 50)),
            "p95_ms": float(np.percentile(t, 95)),
            "p99_ms": float(np.percentile(t, 99)),
            "min_ms": float(t.min()),
            "rows_per_s": float(rows / (np.median(t) / 1e3)),
            "device": str(self.device),
        }

    def jax_function(self, output: str | None = None, *, iteration_range: Any = None) -> Callable:
        """A pure JAX function ``f(*inputs) -> array`` for one graph output or method.

        ``output`` is a graph output name (``"probabilities"``) or a method name
        (``"predict_proba"``); default: the output of ``predict``. The stored
        tensors are closed over, so ``f`` works under ``jax.jit``, ``jax.vmap``,
        ``jax.grad`` and ``jax.export``. Labels come out as class indices.
        Optional inputs (``base_margin``, shaped as the graph input, e.g.
        ``[batch, 1]``) may be left off the end: ``f(X)`` uses their defaults.
        ``iteration_range`` is fixed when ``f`` is made (as in :meth:`predict`).
        Compiled, ``f`` holds the model's values; for an encrypted model, keep
        JAX's persistent compilation cache off while compiling it (mlejax's own
        programs of an encrypted model never use it).
        """
        name = output or self.methods.get("predict") or self.outputs[0]
        name = self.methods.get(name, name)
        if name not in self.graph.outputs:
            raise ValueError(f"unknown output {output!r}; outputs: {self.outputs}, methods: {sorted(self.methods)}")
        _, span = self._options.parse("jax_function", [name], {} if iteration_range is None else {"iteration_range": iteration_range},
                                      leaf=name == "leaf_index")
        graph, params, opts = self._options.graph_for(span), self.program.params, self._options
        infos = graph.inputs
        lowering = {"tree_strategy": self.program.options.get("tree_strategy", "auto")}  # as load_model(tree_strategy=) asked

        def f(*inputs):
            if not opts.n_required <= len(inputs) <= len(infos):
                raise TypeError(f"{f.__name__} takes {opts.n_required} to {len(infos)} inputs {[i.name for i in infos]}, got {len(inputs)}")
            rows = inputs[0].shape[0]
            full = [*inputs, *(opts.default(info.name, rows, jnp) for info in infos[len(inputs) :])]
            return evaluate(graph, params, full, [name], lowering)[0]

        f.__name__ = f"mlejax_{name}"
        return f

    # --- internals -------------------------------------------------------------------
    def _method_output(self, method: str, inputs: Sequence[Any], options: dict, leaf: bool = False) -> np.ndarray:
        output = self.methods[method]
        direct = self._direct
        if direct is not None and not options and len(inputs) == 1:
            x = inputs[0]
            if (type(x) is np.ndarray and x.dtype == direct[0] and x.ndim == direct[2] and x.shape[1:] == direct[1]
                    and x.shape[0] and x.flags.c_contiguous):  # what _prepare_all would pass on unchanged
                if self._checks is not None:
                    self._checks.check_values(x, finite=self.check_finite)
                return self._rows_axis(output, self._to_host(output, self.program.run([output], [x])[0]))
        named, span = self._options.parse(method, [output], options, leaf=leaf) if options else ({}, None)
        arrays = self._prepare_all(inputs, named, options.get(CHECK_FINITE, self.check_finite), options.get(BY_POSITION, False))
        return self._rows_axis(output, self._to_host(output, self._program(span).run([output], arrays)[0]))

    def _rows_axis(self, output: str, value: np.ndarray) -> np.ndarray:
        """``value`` (rows first, as every program computes) with its rows moved where the source method has them."""
        axis = self._batch_axis.get(output)
        return value if axis is None else np.moveaxis(value, 0, axis)

    def _program(self, span: tuple[int, int] | None) -> Program:
        """The program for a tree range (``None``: the stored graph's), built once per range."""
        if span is None:
            return self.program
        if span not in self._ranged:
            self._ranged[span] = SharedProgram(self._options.graph_for(span), self._file.tensors, self.program)
        return self._ranged[span]

    def _to_host(self, output: str, value: np.ndarray) -> np.ndarray:
        if output == "label" and self.classes_ is not None:
            return self.classes_[value]
        return value

    def _prepare_all(
        self, inputs: Sequence[Any], named: dict | None = None, check_finite: bool = True, by_position: bool = False
    ) -> list[np.ndarray]:
        """Host arrays for every graph input: ``inputs`` in order, then ``named`` optional ones, then defaults.

        ``check_finite``: refuse NaN / infinity where the source model does (files that record it).
        ``by_position``: the columns of the first input are in the model's feature order (the
        caller picked them by name: batch scoring, serving), so a plain array is accepted where
        the model selects its columns by name.
        """
        if not isinstance(inputs, (list, tuple)):
            raise InputError(f"run()/benchmark() take a list of inputs (one per graph input), got {type(inputs).__name__}")
        given = self._options.complete(inputs, named or {})
        if self._checks is not None and not by_position:
            self._checks.check_columns(given[0])
        if self._host is not None:
            given = [self._host.apply(given[0]), *given[1:]]
        infos = self.graph.inputs
        dtypes = self._input_dtypes
        arrays = [_prepare(given[0], infos[0], dtypes[0], first=True)]
        if self._checks is not None:
            self._checks.check_values(arrays[0], finite=check_finite)
        rows = arrays[0].shape[0]
        for x, info, dtype in zip(given[1:], infos[1:], dtypes[1:]):
            arrays.append(_prepare(self._options.default(info.name, rows) if x is None else x, info, dtype))
            if arrays[-1].shape[0] != rows:
                raise InputError(f"input {info.name!r} has {arrays[-1].shape[0]} rows, but {infos[0].name!r} has {rows}; all inputs must have the same number of rows")
        return arrays


def _np_dtype(info: ValueInfo) -> np.dtype:
    return np.dtype(info.dtype)


def _input_dtype(info: ValueInfo, precision: str) -> np.dtype:
    """The host dtype of graph input ``info``: its own, or float64 for a float input at ``precision="float64"``."""
    dtype = _np_dtype(info)
    return np.dtype(np.float64) if precision == "float64" and dtype.kind == "f" else dtype


def _prepare(x: Any, info: ValueInfo, dtype: np.dtype, first: bool = False) -> np.ndarray:
    """Host-side checks and conversion of one input to ``dtype`` and the graph input's shape (``first``: the features X)."""
    expected_cols = info.shape[1] if len(info.shape) == 2 and first else None
    if hasattr(x, "columns") and hasattr(x, "to_numpy"):  # pandas DataFrame, without importing pandas
        x = _from_frame(x, info)
    elif type(x).__module__.split(".")[0] == "torch":
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise InputError(f"input {info.name!r} could not be read as an array: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise InputError(
            f"input {info.name!r} has dtype {arr.dtype}; expected numbers ({info.dtype}). "
            "Encode string or object columns before calling the model"
        )
    if arr.ndim == 1 and len(info.shape) == 2:
        raise InputError(
            f"expected a 2D array for input {info.name!r}, got a 1D array of shape {arr.shape}; "
            "use X.reshape(1, -1) for a single row or X.reshape(-1, 1) for a single feature"
        )
    if arr.ndim != len(info.shape) or any(d is not None and d != n for n, d in zip(arr.shape[1:], info.shape[1:])):
        if expected_cols is not None and arr.ndim == 2:
            raise InputError(f"X has {arr.shape[1]} features, but this model is expecting {expected_cols} features as input")
        raise InputError(f"input {info.name!r}: expected shape {['batch', *info.shape[1:]]}, got {list(arr.shape)}")
    if arr.shape[0] == 0:
        raise InputError(f"input {info.name!r} has 0 rows; at least 1 is required")
    return np.ascontiguousarray(arr, dtype=dtype)


def _from_frame(frame: Any, info: ValueInfo) -> Any:
    """Select a DataFrame's columns in the model's order, checking names."""
    names = [str(c) for c in frame.columns]
    if info.feature_names is None:
        return frame.to_numpy()
    expected = list(info.feature_names)
    if names != expected:
        missing = [n for n in expected if n not in names]
        unexpected = [n for n in names if n not in expected]
        if missing or unexpected:
            parts = []
            if unexpected:
                parts.append(f"feature names unseen at fit time: {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
            if missing:
                parts.append(f"feature names seen at fit time, yet now missing: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
            raise InputError("the DataFrame's columns do not match the model's: " + "; ".join(parts))
        frame = frame[[frame.columns[names.index(n)] for n in expected]]
    return frame.to_numpy()


def _check_methods(metadata: dict, graph: Graph) -> dict[str, str]:
    methods = metadata.get("methods")
    if not isinstance(methods, dict) or not methods:
        raise MLEFormatError("metadata.methods: expected a non-empty map of method name to graph output")
    for method, output in methods.items():
        if method not in METHOD_OUTPUTS or output not in METHOD_OUTPUTS[method] or output not in graph.outputs:
            raise MLEFormatError(f"metadata.methods: {method!r} -> {output!r} does not name a known method and graph output")
    return dict(methods)


def _check_batch_axis(metadata: dict, graph: Graph) -> dict[str, int]:
    """``metadata.batch_axis``: graph output -> the axis its method returns the rows on (absent: the first)."""
    spec = metadata.get("batch_axis")
    if spec is None:
        return {}
    if not isinstance(spec, dict) or not all(
        name in graph.outputs and type(axis) is int and 1 <= axis <= 7 for name, axis in spec.items()
    ):
        raise MLEFormatError("metadata.batch_axis: expected a map of graph output name to an axis in 1..7")
    return dict(spec)


def _decode_classes(spec: Any) -> np.ndarray | None:
    """Class labels from metadata: ``{"dtype": numpy dtype str, "values": [...]}``."""
    if spec is None:
        return None
    if not isinstance(spec, dict) or not isinstance(spec.get("values"), list) or not isinstance(spec.get("dtype"), str):
        raise MLEFormatError("metadata.classes: expected {dtype, values}")
    dtype = spec["dtype"]
    values = spec["values"]
    try:
        if dtype == "|O":
            if not all(isinstance(v, (str, int, float, bool)) for v in values):
                raise ValueError("object labels must be str, int, float or bool")
            arr = np.empty(len(values), dtype=object)
            arr[:] = values
            return arr
        np_dtype = np.dtype(dtype)
        if np_dtype.kind not in "biufU":
            raise ValueError(f"label dtype {dtype} is not allowed")
        if np_dtype.kind == "U":  # never wider than the labels present: '<U100000000' must not allocate gigabytes
            longest = max((len(str(v)) for v in values), default=1)
            np_dtype = np.dtype(f"<U{max(1, min(np_dtype.itemsize // 4, longest))}")
        return np.asarray(values, dtype=np_dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise MLEFormatError(f"metadata.classes: {exc}") from None
