"""``export_model``: convert a trained model to Graph IR, check it, write a ``.mle`` file."""

from __future__ import annotations

import datetime as _dt
import functools
import os
import time
import warnings
from typing import Any, Generic, Mapping, TypeVar, overload

import numpy as np

from . import __version__
from .compression import quantization_error, quantize_graph
from .exporters._input_checks import input_checks
from .exporters.registry import ExportContext, find_converter, load_model_file, model_key
from .format import read_mle, write_mle
from .format.errors import InputError, UnsupportedModelError
from .format.graph import GraphBuilder
from .format.policy import make_policy
from .lineage import capture as capture_lineage
from .model import METHOD_OUTPUTS, Model
from .progress import Quiet, bar
from .security import encryption_for

__all__ = ["export_model", "ExportReport"]

#: Parity bound used to flag a bad export: |ours - native| <= TOL * (1 + |native|).
TOLERANCE = 1e-5


T = TypeVar("T")

#: Most (native, ours) value pairs kept per method for :meth:`ExportReport.plot`.
PARITY_SAMPLES = 2000


class _Key(Generic[T]):
    """A typed attribute that reads the report's key of the same name."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> "_Key[T]": ...
    @overload
    def __get__(self, obj: "ExportReport", owner: type | None = None) -> T: ...
    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        try:
            return obj[self.name]
        except KeyError:
            raise AttributeError(f"this ExportReport has no {self.name!r}") from None


class ExportReport(dict):
    """What :func:`export_model` did: sizes, timings, and the parity check on ``sample_input``.

    A ``dict`` (so ``report["file_size_bytes"]``, ``json.dumps(report)`` and
    ``dict(report)`` keep working) whose keys are also typed attributes
    (``report.file_size_bytes``). :meth:`plot` draws ours against the source
    model's outputs on ``sample_input``; in Jupyter the report shows as an
    HTML card with the parity per method.

    Attributes:
      path: the written file.
      estimator: the source model's class, e.g. ``"sklearn.RandomForestClassifier"``.
      export_time_ms: wall time of the export, parity check included.
      file_size_bytes: size of the written file.
      tensor_bytes: raw bytes of the stored tensors.
      compression: ``None`` or ``"zstd"``.
      compression_ratio: ``tensor_bytes / file_size_bytes``.
      ops: count of each Graph IR op.
      methods: the methods the loaded model has (``predict``, ``predict_proba``, ...).
      verification: ``None`` without ``sample_input``; else ``{"rows": n,
        method: {"max_abs_error", "max_rel_error"} or {"label_mismatches"}}``.
      quantization: ``None``, or what was quantized and the measured error.
      encrypted: whether the file is encrypted.
      samples: ``{method: (native, ours)}``, up to ``PARITY_SAMPLES`` float
        values each from the parity check (not a key: kept in memory only,
        not in the file or in ``dict(report)``).
    """

    path = _Key[str]()
    estimator = _Key[str]()
    export_time_ms = _Key[float]()
    file_size_bytes = _Key[int]()
    tensor_bytes = _Key[int]()
    compression = _Key[str | None]()
    compression_ratio = _Key[float]()
    ops = _Key[dict[str, int]]()
    methods = _Key[list[str]]()
    verification = _Key[dict[str, Any] | None]()
    quantization = _Key[dict[str, Any] | None]()
    encrypted = _Key[bool]()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.samples: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __repr__(self) -> str:
        return f"ExportReport({dict.__repr__(self)})"

    def plot(self, method: str | None = None) -> Any:
        """Parity plot: ours against the source model on ``sample_input``, one panel per method (needs matplotlib).

        Returns the matplotlib ``Figure``; see :func:`mlejax.plot.parity`.
        """
        from .plot import parity

        return parity(self, method)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from .display import export_html, mimebundle

        return mimebundle(self, export_html, include, exclude)


def export_model(
    model: Any,
    path: str | os.PathLike,
    *,
    sample_input: Any = None,
    input_shape: tuple[int, ...] | None = None,
    training_data: Any = None,
    compression: str | None = None,
    compression_level: int = 3,
    metadata: Mapping[str, Any] | None = None,
    quantize: str | None = None,
    quantize_leaves: bool = False,
    encrypt_key: bytes | None = None,
    password: str | None = None,
    policy: Mapping[str, Any] | None = None,
    exact_float64: bool = False,
    parent: Any = None,
    progress: bool | None = None,
) -> ExportReport:
    """Export a trained ``model`` to the ``.mle`` file at ``path``.

    Args:
      model: a fitted estimator of a supported type (see
        :func:`mlejax.supported_models`), or the path of a saved native model
        file (XGBoost ``.json``/``.ubj``, LightGBM ``.txt``, CatBoost ``.cbm``).
      path: where to write; the write is atomic.
      sample_input: rows on which the export is run against ``model`` itself;
        the worst error per method is returned and recorded in the file.
      input_shape: the input shape (with the batch dimension) when the model
        does not record its number of features.
      training_data: only for estimators whose ``predict`` needs points they do
        not keep. When given, its fingerprint is recorded in the lineage.
      compression: ``None`` (zero-copy loading) or ``"zstd"``.
      metadata: user metadata (plain data) stored in the file.
      quantize: ``None``, ``"fp16"``, ``"bf16"`` or ``"int8"`` (per-channel
        symmetric): store network weight matrices and conv kernels smaller,
        dequantized inside the XLA program (see :mod:`mlejax.compression`).
      quantize_leaves: also quantize tree leaf values and linear-model weights.
      encrypt_key: encrypt the file with AES-256-GCM under this raw 32-byte
        key; the plaintext never reaches disk.
      password: encrypt it under a key derived from this password (scrypt) instead.
      policy: access policy checked at load, e.g. ``{"expires": datetime,
        "allowed_hosts": [...], "min_runtime_version": "0.1"}`` (see
        :mod:`mlejax.format.policy`; enforceable only on signed files).
      exact_float64: LightGBM and HistGradientBoosting only: decide splits
        exactly as they do for float64 inputs (the host ranks each numeric
        value among the model's float64 thresholds). Without it inputs are rounded to float32 first,
        which is exact for float32 inputs.
      parent: the model this one derives from (a registry ``ModelVersion``,
        ``registry://`` URI or ``.mle`` path), recorded in the lineage.
        ``metadata["lineage"]`` also records hyper-parameters and the git
        commit (see :mod:`mlejax.lineage`).
      progress: a bar through the export's steps (convert, write, check each
        method): ``None`` shows it on a terminal for exports that take over
        half a second, ``False`` never (see :mod:`mlejax.progress`).

    Returns:
      An :class:`ExportReport` (a ``dict`` with typed attributes) with
      ``export_time_ms``, ``file_size_bytes``, ``compression_ratio``, ``ops``,
      ``methods``, ``verification`` and, when quantizing, ``quantization``
      (what was quantized and the max error against the unquantized model on
      ``sample_input``).
    """
    start = time.perf_counter()
    with bar(total=3, desc="export", unit="step", progress=progress) as steps:
        report = _export(model, path, steps, sample_input=sample_input, input_shape=input_shape, training_data=training_data,
                         compression=compression, compression_level=compression_level, metadata=metadata, quantize=quantize,
                         quantize_leaves=quantize_leaves, encrypt_key=encrypt_key, password=password, policy=policy,
                         exact_float64=exact_float64, parent=parent)
    report["export_time_ms"] = (time.perf_counter() - start) * 1e3
    return report


def _export(model: Any, path: str | os.PathLike, steps: Any, *, sample_input: Any, input_shape: Any, training_data: Any,
            compression: str | None, compression_level: int, metadata: Any, quantize: str | None, quantize_leaves: bool,
            encrypt_key: bytes | None, password: str | None, policy: Any, exact_float64: bool, parent: Any) -> ExportReport:
    """:func:`export_model`'s work; ``steps`` is the progress bar: convert, write, check each method, write again."""
    steps.set_description_str("export: convert")
    if isinstance(model, (str, os.PathLike)):
        model = load_model_file(os.fspath(model))
    converter = find_converter(model)
    builder = GraphBuilder()
    build_inputs = getattr(converter, "build_inputs", None)
    n_features = None
    if build_inputs is not None:  # networks: N-d and several inputs
        x = build_inputs(model, sample_input, input_shape, builder)
    else:
        n_features, feature_names = _input_spec(model, sample_input, input_shape)
        x = builder.add_input("X", "float32", (None, n_features), feature_names)
    ctx = ExportContext(builder, options={"training_data": training_data})
    if exact_float64:
        ctx.options["exact_float64"] = True  # a converter that honours it removes it
    outputs = dict(converter(model, x, ctx))
    if ctx.options.pop("exact_float64", False):
        raise UnsupportedModelError(f"exact_float64 is supported for LightGBM and HistGradientBoosting models, not for {type(model).__name__}")
    # A converter may expose methods the source lacks (documented extensions such as DBSCAN.predict).
    forced = outputs.pop("__methods__", {})
    methods = {}
    for method, kinds in METHOD_OUTPUTS.items():
        kind = next((k for k in kinds if k in outputs), None)
        if kind is not None and (hasattr(model, method) or method in forced):
            methods[method] = kind
    for kind in sorted(set(methods.values()) | {k for k in outputs if k.startswith("output:")}):
        builder.set_output(kind, outputs[kind])
    graph = reference = builder.build()
    if sample_input is not None:
        steps.total += len(methods)
    steps.update()
    tensors = builder.tensors
    quantization = None
    if quantize is not None:
        graph, tensors, quantization = quantize_graph(graph, tensors, quantize, quantize_leaves=quantize_leaves)
    encryption = encryption_for(encrypt_key, password)

    meta: dict[str, Any] = {
        "mlejax_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "source": _source_info(model),
        "methods": methods,
        "classes": _encode_classes(ctx.classes),
        "user": dict(metadata or {}),
        "lineage": capture_lineage(model, training_data=training_data, parent=parent),
        "input_checks": input_checks(model, n_features),
    }
    for key in ("host_encoding", "input_defaults", "iterations", "sequence", "batch_axis"):  # what the runtime interprets (format/, lowering/seq_buckets.py)
        if ctx.options.get(key) is not None:
            meta[key] = ctx.options[key]
    if policy is not None:
        meta["policy"] = make_policy(**policy)
    if quantization is not None:
        meta["quantization"] = {k: quantization[k] for k in ("mode", "quantized", "bytes_before", "bytes_after")}
    write = functools.partial(
        write_mle, path, graph=graph.to_dict(), tensors=tensors,
        compression=compression, compression_level=compression_level, encryption=encryption,
    )
    steps.set_description_str("export: write")
    size = write(metadata=meta)
    steps.update()
    verification = None
    samples: dict = {}
    if sample_input is not None:  # check the file as users will load it, then record the result in it
        # Model(read_mle(...)), not load_model: the access policy and signature requirements apply to users.
        loaded = Model(read_mle(path, key=encrypt_key, password=password))
        verification, samples = _verify(model, converter, loaded, methods, sample_input, warn=quantization is None, steps=steps)
        meta["verification"] = verification
        if quantization is not None:
            inputs = _sample_inputs(sample_input, loaded.graph)
            quantization["error"] = quantization_error(loaded, reference, builder.tensors, methods, inputs)
            meta["quantization"]["error"] = quantization["error"]
        steps.set_description_str("export: write")
        size = write(metadata=meta)
    steps.update()
    raw = sum(a.nbytes for a in tensors.values())
    ops: dict[str, int] = {}
    for node in graph.nodes:
        ops[node.op] = ops.get(node.op, 0) + 1
    report = ExportReport(
        path=os.fspath(path),
        estimator=meta["source"]["estimator"],
        export_time_ms=0.0,
        file_size_bytes=size,
        tensor_bytes=raw,
        compression=compression,
        compression_ratio=raw / size if size else 1.0,
        ops=ops,
        methods=sorted(methods),
        verification=verification,
        quantization=quantization,
        encrypted=encryption is not None,
    )
    report.samples = samples
    return report


def _input_spec(model: Any, sample_input: Any, input_shape: Any) -> tuple[int, list[str] | None]:
    names = getattr(model, "feature_names_in_", None)
    names = None if names is None else [str(n) for n in names]
    n = getattr(model, "n_features_in_", None)
    if n is None and sample_input is not None:
        n = np.asarray(sample_input).shape[1]
    if n is None and input_shape is not None:
        n = int(input_shape[-1])
    if n is None:
        raise InputError("cannot tell the number of input features: pass sample_input= or input_shape=")
    return int(n), names


def _source_info(model: Any) -> dict:
    top = type(model).__module__.split(".")[0]
    info = {"framework": top, "estimator": f"{top}.{type(model).__qualname__}", "key": model_key(model)}
    try:
        import importlib.metadata as md

        dist = {"sklearn": "scikit-learn"}.get(top, top)
        info["framework_version"] = md.version(dist)
    except Exception:  # the version is informational only
        pass
    return info


def _encode_classes(classes: np.ndarray | None) -> dict | None:
    if classes is None:
        return None
    classes = np.asarray(classes)
    if classes.dtype.kind == "O":
        values = [v if isinstance(v, (str, bool)) else v.item() if hasattr(v, "item") else v for v in classes]
        if not all(isinstance(v, (str, int, float, bool)) for v in values):
            raise UnsupportedModelError("class labels must be strings, numbers or booleans")
        return {"dtype": "|O", "values": values}
    if classes.dtype.kind not in "biufU":
        raise UnsupportedModelError(f"class labels of dtype {classes.dtype} are not supported")
    return {"dtype": classes.dtype.str, "values": classes.tolist()}


def _sample_inputs(sample_input: Any, graph: Any) -> list:
    """``sample_input`` as one entry per graph input (a dict is keyed by input name; optional inputs may be left out)."""
    if isinstance(sample_input, dict):
        names = [info.name for info in graph.inputs]
        given = next((i for i, name in enumerate(names) if name not in sample_input), len(names))
        return [sample_input[name] for name in names[: max(given, 1)]]
    return list(sample_input) if isinstance(sample_input, (list, tuple)) else [sample_input]


def _native_method(model: Any, method: str, inputs: list) -> Any:
    """The source model's ``method``; float32 arrays are widened (exactly) to float64 first.

    scikit-learn computes float32 input in float32 but float64 input in float64,
    the path mlejax reproduces (e.g. scalers folded into tree thresholds), so the
    check compares against that.
    """
    widened = [x.astype(np.float64) if isinstance(x, np.ndarray) and x.dtype == np.float32 else x for x in inputs]
    return getattr(model, method)(*widened)


def _verify(model: Any, converter: Any, loaded: Model, methods: dict, sample_input: Any,
            warn: bool = True, steps: Any = None) -> tuple[dict, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Run the written file and the source model on ``sample_input``; return worst errors per method.

    Also returns ``{method: (native, ours)}``: up to :data:`PARITY_SAMPLES`
    float values of each non-label method, for :meth:`ExportReport.plot`.

    A converter may define ``native_method(model, method, inputs)`` to say how
    its framework computes a method (networks have no ``predict``). ``warn``
    is off for quantized exports, whose error is reported separately.
    ``steps`` (a progress bar) advances once per method.
    """
    steps = Quiet() if steps is None else steps
    inputs = _sample_inputs(sample_input, loaded.graph)
    native_call = getattr(converter, "native_method", _native_method)
    report: dict[str, Any] = {"rows": int(len(inputs[0]))}
    samples: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for method, kind in methods.items():
        steps.set_description_str(f"export: check {method}")
        steps.update()
        if native_call is _native_method and not hasattr(model, method):
            continue  # a documented extension the source model lacks: nothing to compare with
        with np.errstate(all="ignore"):  # e.g. sklearn's own log(0) in predict_log_proba
            native = native_call(model, method, inputs)
        native = np.asarray(native.toarray() if hasattr(native, "toarray") else native)  # sparse transforms
        got = np.asarray(getattr(loaded, method)(*inputs))
        if kind == "label":
            mismatches = int(np.sum(got.reshape(native.shape) != native))
            report[method] = {"label_mismatches": mismatches}
            bad = mismatches > 0
        else:
            ours, ref = got.astype(np.float64).reshape(native.shape), native.astype(np.float64)
            err, rel = _errors(ours, ref, log=kind == "log_probabilities")
            # initial=0: a zero-column output (a selector that keeps no feature) is valid and exact
            report[method] = {"max_abs_error": float(np.max(err, initial=0.0)), "max_rel_error": float(np.max(rel, initial=0.0))}
            keep = np.linspace(0, ref.size - 1, min(ref.size, PARITY_SAMPLES)).astype(np.int64)
            samples[method] = (ref.ravel()[keep], ours.ravel()[keep])
            bad = not report[method]["max_rel_error"] <= TOLERANCE
        if bad and warn:
            warnings.warn(f"export check: {method} differs from the source model on sample_input: {report[method]}", stacklevel=4)
    return report, samples


def _errors(got: np.ndarray, native: np.ndarray, log: bool) -> tuple[np.ndarray, np.ndarray]:
    """Absolute and relative (``/ (1 + |native|)``) errors; equal values, equal infinities and NaN pairs count as exact.

    ``log``: log-probabilities, which agree where their logs or their
    probabilities agree: a source computing in float32 rounds ``1 - p`` to a
    multiple of 2**-24, or to 0 (a log of ``-inf``), where float64 keeps it.
    """
    same = (got == native) | (np.isnan(got) & np.isnan(native))
    with np.errstate(all="ignore"):
        err = np.where(same, 0.0, np.abs(got - native))
        rel = np.where(same, 0.0, err / (1 + np.abs(native)))
        if log:
            gap = np.abs(np.exp(got) - np.exp(native))
            err, rel = np.fmin(err, gap), np.fmin(rel, gap)  # fmin: inf / inf = nan is not an error where gap is finite
    return err, rel
