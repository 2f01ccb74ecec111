"""Ahead-of-time artifacts from a ``.mle`` file: StableHLO (``jax.export``) and IREE ``.vmfb`` modules.

``mle-compile MODEL.mle -o OUTDIR --target stablehlo|iree-cpu|iree-cuda`` (or
:func:`compile`) turns each method of a model into an artifact that runs
without mlejax:

- ``stablehlo``: one serialized ``jax.export`` artifact per method
  (``{method}.jaxexport``, with its StableHLO text beside it as
  ``{method}.mlir``) whose batch dimension is symbolic; where a program cannot
  be exported with a symbolic batch, one artifact per batch size
  (``{method}_b{batch}.jaxexport``).
- ``iree-cpu`` / ``iree-cuda``: one ``model.vmfb`` holding one function per
  method and batch size, named ``{method}_b{batch}``. IREE runs it with its
  native runtime (``iree-run-module``, or the C API): no Python. The batch
  sizes are fixed: IREE does not take these programs with a dynamic batch.

Every target writes ``signature.json`` beside the artifacts: inputs (name,
dtype, shape), the output of each method, ``classes_``, how to pad a partial
batch, the input checks the source model makes that the artifact does not,
the mlejax version and the source file's sha256.

The programs are the ones :meth:`mlejax.Model.jax_function` gives, with the
stored tensors embedded as constants. ``label`` outputs are class indices
into ``classes_``. Models that encode some columns on the host (string
categories, CatBoost categorical hashing and CTRs, LightGBM's exact float64
ranks) are refused: that step cannot run inside the artifact.

``iree-base-compiler`` (``pip install 'mlejax[iree]'``) is needed to compile,
never to run.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import re
import sys
from typing import Any, Sequence

import numpy as np

from .format.errors import MLEError, UnsupportedModelError
from .lowering.seq_buckets import refuse_variable_axes

__all__ = ["compile", "main", "TARGETS", "DEFAULT_BATCH_SIZES"]

TARGETS = ("stablehlo", "iree-cpu", "iree-cuda")
DEFAULT_BATCH_SIZES = (1, 64, 1024)
#: Format tag of ``signature.json``.
SIGNATURE_FORMAT = "mlejax-aot/1"
PADDING = (
    "Rows are independent: pad a partial batch of n rows with zero rows up to the next compiled batch size, "
    "run, and keep the first n rows of each output. Split more rows than the largest size into batches."
)


def compile(  # noqa: A001  (mlejax.compile, as the issue names it)
    model: Any,
    out_dir: str | os.PathLike,
    *,
    target: str = "iree-cpu",
    methods: Sequence[str] | None = None,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    cpu: str = "host",
    cuda_target: str = "sm_80",
) -> dict:
    """Compile a model's methods to ``target`` artifacts in ``out_dir``; return the ``signature.json`` dict.

    Args:
      model: a ``.mle`` path or a loaded :class:`mlejax.Model`.
      out_dir: created if missing; artifacts and ``signature.json`` are written there.
      target: ``"stablehlo"``, ``"iree-cpu"`` or ``"iree-cuda"``.
      methods: the methods to compile (default: all the model has).
      batch_sizes: the fixed batch sizes (IREE functions ``{method}_b{batch}``;
        for ``stablehlo``, used only where the batch cannot be symbolic).
      cpu: ``"host"`` (this machine's CPU features) or ``"generic"`` (any
        x86-64 / aarch64 of the same architecture), for ``iree-cpu``.
      cuda_target: the GPU architecture for ``iree-cuda`` (e.g. ``sm_80``, ``sm_90``).

    Raises:
      UnsupportedModelError: a host-side step the artifact cannot hold, or an
        op IREE cannot compile (named, with IREE's reason).
      ValueError: an unknown target, method, batch size or cpu.
      ImportError: ``iree-base-compiler`` is missing for an IREE target.
    """
    from .model import Model, load_model

    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
    if cpu not in ("host", "generic"):
        raise ValueError(f"cpu must be 'host' or 'generic', got {cpu!r}")
    sizes = sorted({int(b) for b in batch_sizes})
    if not sizes or sizes[0] < 1:
        raise ValueError(f"batch sizes must be positive integers, got {list(batch_sizes)}")
    source_path = None
    if not isinstance(model, Model):
        source_path = os.fspath(model)
        model = load_model(source_path)
    methods = list(methods) if methods else sorted(model.methods)
    unknown = [m for m in methods if m not in model.methods]
    if unknown:
        raise ValueError(f"this model has no method {unknown}; it has {sorted(model.methods)}")
    _refuse_host_steps(model)
    refuse_variable_axes(model.graph, "mle-compile")
    os.makedirs(out_dir, exist_ok=True)
    signature = _signature(model, source_path, target, sizes)
    if target == "stablehlo":
        _stablehlo(model, methods, sizes, out_dir, signature)
    else:
        _iree(model, methods, sizes, out_dir, signature, target, cpu, cuda_target)
    with open(os.path.join(out_dir, "signature.json"), "w") as fh:
        json.dump(signature, fh, indent=2)
    return signature


# --- what the artifact takes and gives ---------------------------------------------------------
def _refuse_host_steps(model: Any) -> None:
    """UnsupportedModelError naming the host-side encoding steps of ``model`` (none: return)."""
    host = model._host
    if host is None:
        return
    steps = []
    if host.catboost is not None:
        steps.append("CatBoost categorical hashing and CTR statistics")
    ranks = sorted(i for i, c in host.columns.items() if c.kind == "rank")
    cats = sorted(i for i, c in host.columns.items() if c.kind not in ("rank", "ignore"))
    if cats:
        steps.append(f"string category codes of input columns {cats}")
    if ranks:
        steps.append(f"float64 threshold ranks of input columns {ranks} (exported with exact_float64=True)")
    if steps:
        raise UnsupportedModelError(
            f"{model.source_estimator} encodes input on the host before its program runs ({'; '.join(steps)}); "
            "that step cannot run inside a compiled artifact. Supported: models whose input goes to the program as "
            "numbers (export LightGBM / HistGradientBoosting without exact_float64, encode string or CatBoost "
            "categorical columns as numbers before training)"
        )


def _required_inputs(model: Any) -> list:
    """The graph inputs an artifact takes: the required ones (optional ones, e.g. ``base_margin``, get their defaults)."""
    return list(model.graph.inputs[: model._options.n_required])


def _signature(model: Any, source_path: str | None, target: str, sizes: list[int]) -> dict:
    from . import __version__

    sha = None
    if source_path is not None:
        h = hashlib.sha256()
        with open(source_path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        sha = h.hexdigest()
    inputs = []
    for info in _required_inputs(model):
        entry = {"name": info.name, "dtype": str(np.dtype(info.dtype)), "shape": ["batch", *info.shape[1:]]}
        if info.feature_names is not None:
            entry["feature_names"] = [str(n) for n in info.feature_names]
        inputs.append(entry)
    classes = model.classes_
    checks = model._checks
    return {
        "format": SIGNATURE_FORMAT,
        "target": target,
        "mlejax_version": __version__,
        "source": {"file": None if source_path is None else os.path.basename(source_path), "sha256": sha,
                   "estimator": model.source_estimator},
        "inputs": inputs,
        "methods": {},
        "classes_": None if classes is None else [_json_scalar(c) for c in classes],
        "batch_sizes": sizes,
        "padding": PADDING,
        "input_checks": None if checks is None else {
            "reject_nan_columns": sorted(checks.nan), "reject_inf_columns": sorted(checks.inf),
            "note": "the source model raises on NaN / infinity in these columns; the artifact does not check",
        },
        "host_steps": [],
    }


def _json_scalar(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _output_entry(model: Any, method: str, aval: Any) -> dict:
    output = model.methods[method]
    entry = {"output": output, "dtype": str(np.dtype(aval.dtype)), "shape": ["batch", *[int(d) for d in aval.shape[1:]]]}
    if output == "label" and model.classes_ is not None:
        entry["labels"] = "class indices: classes_[value] is the label"
    return entry


def _specs(model: Any, batch: Any) -> list:
    import jax

    return [jax.ShapeDtypeStruct((batch, *info.shape[1:]), jax.dtypes.canonicalize_dtype(np.dtype(info.dtype)))
            for info in _required_inputs(model)]


def _export(model: Any, method: str, batch: Any, signature: dict, platform: str | None = None):
    """``jax.export`` of ``method`` for ``batch`` rows, lowered for ``platform`` (default: JAX's default backend).

    The signature's input dtypes become the exported ones (without
    ``jax_enable_x64``, an int64 graph input, such as token ids, is taken as int32).
    """
    import jax

    platforms = None if platform is None else [platform]
    exported = jax.export.export(jax.jit(model.jax_function(method)), platforms=platforms)(*_specs(model, batch))
    for entry, aval in zip(signature["inputs"], exported.in_avals):
        entry["dtype"] = str(np.dtype(aval.dtype))
    return exported


# --- stablehlo -----------------------------------------------------------------------------------
def _stablehlo(model: Any, methods: list[str], sizes: list[int], out_dir: str, signature: dict) -> None:
    import jax

    for method in methods:
        try:
            exported = {"batch": _export(model, method, jax.export.symbolic_shape("batch")[0], signature)}
            why = None
        except Exception as exc:  # a program that needs a concrete batch: one artifact per size
            why = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            exported = {b: _export(model, method, b, signature) for b in sizes}
        entry = _output_entry(model, method, next(iter(exported.values())).out_avals[0])
        entry["symbolic_batch"] = why is None
        if why is not None:
            entry["why_fixed"] = why
        entry["artifacts"] = {}
        for batch, exp in exported.items():
            name = method if batch == "batch" else f"{method}_b{batch}"
            with open(os.path.join(out_dir, f"{name}.jaxexport"), "wb") as fh:
                fh.write(exp.serialize())
            with open(os.path.join(out_dir, f"{name}.mlir"), "w") as fh:
                fh.write(exp.mlir_module())
            entry["artifacts"][str(batch)] = f"{name}.jaxexport"
        signature["methods"][method] = entry
    signature["jax_version"] = jax.__version__
    signature["how_to_run"] = "jax.export.deserialize(open(path, 'rb').read()).call(x)"


# --- IREE ----------------------------------------------------------------------------------------
def _iree(model: Any, methods: list[str], sizes: list[int], out_dir: str, signature: dict, target: str, cpu: str,
          cuda_target: str) -> None:
    try:
        from iree.compiler import ir, tools
        from iree.compiler.version import VERSION as iree_version
    except ImportError as exc:
        raise ImportError(f"the {target} target needs iree-base-compiler ({exc}); pip install 'mlejax[iree]'") from None
    texts = {}
    for method in methods:
        entry = None
        for b in sizes:
            exp = _export(model, method, b, signature, "cpu" if target == "iree-cpu" else "cuda")
            _refuse_custom_calls(model, exp.mlir_module(), f"{method}_b{b}")
            texts[f"{method}_b{b}"] = exp.mlir_module()
            entry = entry or _output_entry(model, method, exp.out_avals[0])
        entry["functions"] = {str(b): f"{method}_b{b}" for b in sizes}
        signature["methods"][method] = entry
    module = _merge(ir, texts)
    if target == "iree-cpu":
        flags = ["--iree-hal-target-device=local", "--iree-hal-local-target-device-backends=llvm-cpu",
                 f"--iree-llvmcpu-target-cpu={cpu}"]
        device = "local-task (or local-sync: one thread, fastest start)"
    else:
        flags = ["--iree-hal-target-device=cuda", f"--iree-cuda-target={cuda_target}"]
        device = "cuda"
    flags.append("--iree-input-demote-f64-to-f32=false")  # ops that compute in float64 keep it, as under XLA
    try:
        binary = tools.compile_str(module, input_type="stablehlo", extra_args=flags)
    except tools.CompilerToolError as exc:
        raise UnsupportedModelError(_iree_failure(model, target, str(exc))) from None
    with open(os.path.join(out_dir, "model.vmfb"), "wb") as fh:
        fh.write(binary)
    signature.update({
        "module": "model.vmfb", "iree_version": iree_version, "iree_flags": flags, "device": device,
        "how_to_run": "iree-run-module --module=model.vmfb --device=local-sync --function=predict_proba_b1 "
                      "--input=@x.npy --output=@out.npy",
    })
    if target == "iree-cpu":
        signature["cpu"] = cpu
    else:
        signature["cuda_target"] = cuda_target


def _merge(ir: Any, texts: dict[str, str]) -> str:
    """One MLIR module holding each exported module's ``main`` as a public function named by its key.

    The other functions of each module (JAX's private helpers) are renamed
    ``{key}__{name}`` so that the modules' symbols do not clash.
    """
    ctx = ir.Context()
    merged = ir.Module.parse("module {}", ctx)
    for key, text in texts.items():
        module = ir.Module.parse(text, ctx)
        ops = list(module.body.operations)
        for op in ops:
            old = ir.StringAttr(ir.SymbolTable.get_symbol_name(op)).value
            new = key if old == "main" else f"{key}__{old}"
            ir.SymbolTable.replace_all_symbol_uses(old, new, module.operation)
            ir.SymbolTable.set_symbol_name(op, new)
        for op in ops:
            merged.body.append(op)
    return str(merged)


def _refuse_custom_calls(model: Any, text: str, function: str) -> None:
    """UnsupportedModelError for a ``stablehlo.custom_call`` (a host/library call that IREE cannot compile)."""
    targets = sorted(set(re.findall(r"stablehlo\.custom_call\s+@([\w.$-]+)", text)))
    if targets:
        raise UnsupportedModelError(
            f"{function} of {model.source_estimator} lowers to XLA custom calls {targets}, which IREE cannot compile; "
            "the stablehlo target runs it under JAX"
        )


def _iree_failure(model: Any, target: str, message: str) -> str:
    """A message naming the graph op (and node) behind IREE's first error, with IREE's reason."""
    lines = message.splitlines()
    first = next((ln.strip() for ln in lines if ": error: " in ln), None) or next(
        (ln.strip() for ln in lines if "error" in ln.lower()), lines[0] if lines else message)
    places = re.findall(r"([\w./-]+\.py):(\d+)", message[message.find(first):] if first in message else message)
    culprit = _rule_at(model, places)
    reason = re.sub(r"^\S+?:\d+:\d+: error: ", "", first)
    where = f"op {culprit[0]} (node {culprit[1]!r})" if culprit else "an op of this model"
    return (f"IREE ({target}) cannot compile {where} of {model.source_estimator}: {reason}. "
            "The stablehlo target (run under JAX) takes every model")


def _rule_at(model: Any, places: list[tuple[str, str]]) -> tuple[str, str] | None:
    """(op, node name) of the graph node whose lowering rule holds one of the source ``places`` (file, line)."""
    from .lowering.registry import get_rule

    spans = []
    for node in model.graph.nodes:
        fn = get_rule(node).fn
        try:
            lines, start = inspect.getsourcelines(fn)
        except (OSError, TypeError):
            continue
        spans.append((os.path.realpath(inspect.getsourcefile(fn)), start, start + len(lines), node))
    for path, line in places:
        for src, start, end, node in spans:
            if os.path.realpath(path) == src and start <= int(line) < end:
                return node.op, node.name
    return None


# --- command line --------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """``mle-compile MODEL.mle -o OUTDIR --target stablehlo|iree-cpu|iree-cuda [--methods ...] [--batch 1,64,1024] [--cpu host|generic]``."""
    parser = argparse.ArgumentParser(prog="mle-compile", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="the .mle file")
    parser.add_argument("-o", "--output", required=True, help="directory for the artifacts and signature.json")
    parser.add_argument("--target", choices=TARGETS, default="iree-cpu")
    parser.add_argument("--methods", default=None, help="comma-separated methods (default: all the model has)")
    parser.add_argument("--batch", default=",".join(map(str, DEFAULT_BATCH_SIZES)),
                        help="comma-separated batch sizes (default %(default)s)")
    parser.add_argument("--cpu", choices=("host", "generic"), default="host", help="CPU to compile for (iree-cpu)")
    parser.add_argument("--cuda-target", default="sm_80", help="GPU architecture (iree-cuda), e.g. sm_80, sm_90")
    args = parser.parse_args(argv)
    try:
        sizes = [int(b) for b in args.batch.split(",") if b.strip()]
    except ValueError:
        parser.error(f"--batch: expected comma-separated integers, got {args.batch!r}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    try:
        sig = compile(args.model, args.output, target=args.target, methods=methods, batch_sizes=sizes, cpu=args.cpu,
                      cuda_target=args.cuda_target)
    except (MLEError, ValueError, ImportError, OSError) as exc:
        print(f"mle-compile: error: {exc}", file=sys.stderr)
        return 2
    files = sorted(os.listdir(args.output))
    size = sum(os.path.getsize(os.path.join(args.output, f)) for f in files)
    print(f"{args.target}: {', '.join(sig['methods'])} -> {args.output} ({', '.join(files)}; {size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
