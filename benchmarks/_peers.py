"""Peer adapters for the tree benchmark: one class per way of scoring a trained model.

Every peer turns a trained classifier into an artifact on disk (``convert``),
opens it (``load``) and returns class probabilities as a float ``(n, n_classes)``
numpy array (``proba``), so that ``benchmarks/trees.py`` can time and check all
of them the same way. A peer that cannot handle a model raises
:class:`PeerUnavailable` with a short reason; the suite prints it as
``n/a (reason)`` and goes on.

Peers: the training library itself (``native``), ONNX Runtime (``ort``),
Hummingbird (``hb-torch``, ``hb-torchscript``), Treelite + TL2cgen compiled C
(``tl2cgen``), the ``mle-runtime`` package from PyPI (``mle-runtime``) and
mlejax (``mlejax``). Each framework is imported only when its peer is used.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "PeerUnavailable",
    "Artifact",
    "Peer",
    "family_of",
    "make_peers",
    "PEER_NAMES",
    "mlejax_strategy_of",
]


class PeerUnavailable(Exception):
    """This peer cannot convert or run this model; the message says why (one line)."""


@dataclass
class Artifact:
    """What ``convert`` produced: the file scored from, plus peer-private state."""

    path: str
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def size_bytes(self) -> int:
        return os.path.getsize(self.path)


def family_of(model: Any) -> str:
    """``"sklearn"``, ``"xgboost"``, ``"lightgbm"`` or ``"catboost"``, from the estimator's module."""
    root = type(model).__module__.split(".")[0]
    if root not in ("sklearn", "xgboost", "lightgbm", "catboost"):
        raise ValueError(f"unsupported model family {root!r}")
    return root


def _two_columns(p: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities as ``(n, n_classes)``: a binary ``P(class 1)`` column becomes ``[1 - p, p]``."""
    p = np.asarray(p)
    p = p.reshape(p.shape[0], -1)
    if n_classes == 2 and p.shape[1] == 1:
        p = np.concatenate([1.0 - p, p], axis=1)
    return p


@contextlib.contextmanager
def _quiet():
    """Silence a peer's prints and warnings (mle-runtime prints on every load)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(io.StringIO()):
            yield


class Peer:
    """One way of scoring a model. Subclasses set ``name`` and implement the three steps."""

    name = "peer"
    #: run an untimed call at every batch size before timing (programs specialised per shape)
    warmup_each_size = False

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def convert(self, model: Any, n_classes: int, X: np.ndarray, workdir: str) -> Artifact:
        """Write ``model`` in this peer's format under ``workdir``."""
        raise NotImplementedError

    def prepare_load(self, art: Artifact, i: int) -> Artifact:
        """Untimed step before the ``i``-th timed load (e.g. a fresh copy a loader would cache)."""
        return art

    def load(self, art: Artifact) -> Any:
        """Open the artifact; return the object ``proba`` runs."""
        raise NotImplementedError

    def proba(self, loaded: Any, X: np.ndarray) -> np.ndarray:
        """Class probabilities for ``X`` as a materialised numpy array."""
        raise NotImplementedError

    def notes(self, loaded: Any) -> str:
        """Anything worth printing next to this peer's figures (strategy picked, ...)."""
        return ""


# --- native ---------------------------------------------------------------------------
class NativePeer(Peer):
    """The training library's own ``predict_proba``, from its own file format, on all cores."""

    name = "native"

    def convert(self, model, n_classes, X, workdir):
        fam = family_of(model)
        if fam == "sklearn":
            import joblib

            path = os.path.join(workdir, "model.joblib")
            joblib.dump(model, path)
        elif fam == "xgboost":
            path = os.path.join(workdir, "model.ubj")
            model.save_model(path)
        elif fam == "lightgbm":
            path = os.path.join(workdir, "model.txt")
            model.booster_.save_model(path)
        else:
            path = os.path.join(workdir, "model.cbm")
            model.save_model(path)
        return Artifact(path, {"family": fam, "n_classes": n_classes})

    def load(self, art):
        fam = art.state["family"]
        if fam == "sklearn":
            import joblib

            model = joblib.load(art.path)
            if "n_jobs" in model.get_params():
                model.set_params(n_jobs=self.threads)
            return model
        if fam == "xgboost":
            import xgboost

            model = xgboost.XGBClassifier(n_jobs=self.threads)
            model.load_model(art.path)
            return model
        if fam == "lightgbm":
            import lightgbm

            return lightgbm.Booster(model_file=art.path)
        import catboost

        model = catboost.CatBoostClassifier(thread_count=self.threads)
        model.load_model(art.path)
        return model

    def proba(self, loaded, X):
        if type(loaded).__name__ == "Booster":  # LightGBM
            return _two_columns(loaded.predict(X, num_threads=self.threads), self._n_classes(loaded))
        return np.asarray(loaded.predict_proba(X))

    @staticmethod
    def _n_classes(booster) -> int:
        k = booster.num_model_per_iteration()
        return 2 if k == 1 else k


# --- ONNX Runtime ---------------------------------------------------------------------
def _strip_zipmap(onx: Any) -> Any:
    """Replace a ZipMap output (a list of dicts) by the probability tensor it wraps."""
    for node in list(onx.graph.node):
        if node.op_type != "ZipMap":
            continue
        tensor_name, map_name = node.input[0], node.output[0]
        onx.graph.node.remove(node)
        for out in onx.graph.output:
            if out.name == map_name:
                from onnx import TensorProto, helper

                onx.graph.output.remove(out)
                onx.graph.output.append(helper.make_tensor_value_info(tensor_name, TensorProto.FLOAT, None))
                break
    return onx


class OrtPeer(Peer):
    """ONNX Runtime (CPU provider, all cores) on skl2onnx / onnxmltools / CatBoost's own ONNX export."""

    name = "ort"

    def convert(self, model, n_classes, X, workdir):
        import onnx

        fam = family_of(model)
        path = os.path.join(workdir, "model.onnx")
        try:
            with _quiet():
                if fam == "sklearn":
                    from skl2onnx import to_onnx

                    onx = to_onnx(model, X[:1], options={id(model): {"zipmap": False}})
                elif fam in ("xgboost", "lightgbm"):
                    import onnxmltools
                    from onnxmltools.convert.common.data_types import FloatTensorType

                    types = [("X", FloatTensorType([None, X.shape[1]]))]
                    if fam == "xgboost":
                        onx = onnxmltools.convert_xgboost(model, initial_types=types, target_opset=15)
                    else:
                        onx = onnxmltools.convert_lightgbm(model, initial_types=types, target_opset=15, zipmap=False)
                else:
                    model.save_model(path, format="onnx")
                    onx = onnx.load(path)
        except Exception as exc:
            raise PeerUnavailable(f"conversion failed: {type(exc).__name__}: {_first_line(exc)}") from None
        onnx.save(_strip_zipmap(onx), path)
        return Artifact(path)

    def load(self, art):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.log_severity_level = 3
        sess = ort.InferenceSession(art.path, opts, providers=["CPUExecutionProvider"])
        outs = [o.name for o in sess.get_outputs()]
        prob = next((o for o in outs if "prob" in o.lower()), outs[-1])
        return sess, sess.get_inputs()[0].name, prob

    def proba(self, loaded, X):
        sess, inp, out = loaded
        return np.asarray(sess.run([out], {inp: X})[0])


# --- Hummingbird ------------------------------------------------------------------------
class HummingbirdPeer(Peer):
    """Hummingbird's tensor programs on PyTorch (``torch``) or TorchScript (``torch.jit``), all cores."""

    def __init__(self, threads: int, backend: str) -> None:
        super().__init__(threads)
        self.backend = backend
        self.name = "hb-torch" if backend == "torch" else "hb-torchscript"
        self.warmup_each_size = backend == "torch.jit"  # TorchScript's profiling executor re-optimises per shape

    def convert(self, model, n_classes, X, workdir):
        import hummingbird.ml
        import torch

        torch.set_num_threads(self.threads)
        try:
            with _quiet():
                hb = hummingbird.ml.convert(model, self.backend, X[:100])
        except Exception as exc:
            raise PeerUnavailable(f"{type(exc).__name__}: {_first_line(exc)}") from None
        base = os.path.join(workdir, self.name)
        with _quiet():
            hb.save(base)
        return Artifact(base + ".zip", {"base": base})

    def load(self, art):
        import hummingbird.ml

        with _quiet():  # our own file, written above: skip the digest check
            return hummingbird.ml.load(art.state["base"], override_flag=True)

    def proba(self, loaded, X):
        return np.asarray(loaded.predict_proba(X))


# --- Treelite + TL2cgen -------------------------------------------------------------------
_TL2CGEN_BUILD = textwrap.dedent(
    """
    import sys, treelite, tl2cgen
    model = treelite.Model.deserialize(sys.argv[1])
    tl2cgen.export_lib(model, toolchain="gcc", libpath=sys.argv[2],
                       params={"parallel_comp": int(sys.argv[3])}, nthread=int(sys.argv[4]))
    """
)


class Tl2cgenPeer(Peer):
    """Treelite import + TL2cgen C code compiled by gcc -O3 (TL2cgen's default flags), all cores.

    The compile runs in a child process so that a model too big for gcc within
    ``compile_timeout`` seconds is reported instead of stalling the suite.
    """

    name = "tl2cgen"

    def __init__(self, threads: int, compile_timeout: float) -> None:
        super().__init__(threads)
        self.compile_timeout = compile_timeout

    def convert(self, model, n_classes, X, workdir):
        import treelite

        fam = family_of(model)
        try:
            if fam == "sklearn":
                tl = treelite.sklearn.import_model(model)
            elif fam == "xgboost":
                tl = treelite.frontend.from_xgboost(model.get_booster())
            elif fam == "lightgbm":
                tl = treelite.frontend.from_lightgbm(model.booster_)
            else:
                raise PeerUnavailable("Treelite 4 has no CatBoost importer")
        except PeerUnavailable:
            raise
        except Exception as exc:
            raise PeerUnavailable(f"treelite import failed: {type(exc).__name__}: {_first_line(exc)}") from None
        tl_path = os.path.join(workdir, "model.treelite")
        tl.serialize(tl_path)
        lib = os.path.join(workdir, "model.so")
        parts = max(1, min(tl.num_tree, 32))  # several source files: gcc time grows faster than linearly with file size
        cmd = [sys.executable, "-c", _TL2CGEN_BUILD, tl_path, lib, str(parts), str(self.threads)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=self.compile_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # the child and the gcc processes it started
            proc.communicate()
            raise PeerUnavailable(f"gcc compile exceeded {self.compile_timeout:.0f} s") from None
        if proc.returncode != 0 or not os.path.exists(lib):
            tail = out.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
            raise PeerUnavailable(f"compile failed: {tail[0][:120]}")
        return Artifact(lib, {"n_classes": n_classes})

    def prepare_load(self, art, i):
        # dlopen of a path already open returns the cached handle: load a fresh copy each time
        copy = f"{art.path[:-3]}.{i}.so"
        shutil.copyfile(art.path, copy)
        return Artifact(copy, art.state)

    def load(self, art):
        import tl2cgen

        return tl2cgen.Predictor(art.path, nthread=self.threads), art.state["n_classes"]

    def proba(self, loaded, X):
        import tl2cgen

        predictor, n_classes = loaded
        return _two_columns(predictor.predict(tl2cgen.DMatrix(X)), n_classes)


# --- mle-runtime (PyPI) ----------------------------------------------------------------------
class MleRuntimePeer(Peer):
    """The ``mle-runtime`` package from PyPI: its ``export_model`` / ``load_model`` / ``run``.

    Its file holds a pickle of the model. Whatever ``run`` returns is taken as
    its probabilities and checked against the model like every other peer's.
    """

    name = "mle-runtime"

    def convert(self, model, n_classes, X, workdir):
        path = os.path.join(workdir, "model.mle-runtime.mle")
        try:
            with _quiet():
                import mle_runtime

                info = mle_runtime.export_model(model, path, input_shape=(None, X.shape[1]))
        except Exception as exc:
            raise PeerUnavailable(f"{type(exc).__name__}: {_first_line(exc)}") from None
        if not isinstance(info, dict) or info.get("status") == "error" or not os.path.exists(path):
            raise PeerUnavailable(f"export failed: {info.get('error') if isinstance(info, dict) else info}")
        return Artifact(path)

    def load(self, art):
        saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        try:
            with _quiet():
                import mle_runtime

                return mle_runtime.load_model(art.path)
        finally:  # its loader sets these process-wide
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def proba(self, loaded, X):
        with _quiet():
            return np.asarray(loaded.run([X])[0])

    def notes(self, loaded):
        return "file is a pickle"


# --- mlejax ----------------------------------------------------------------------------------
_STRATEGY_ATTRS = ("tree_strategy", "tree_strategies", "strategy", "strategies")


def mlejax_strategy_of(model: Any) -> str:
    """The tree strategy an mlejax ``Model`` reports (empty when it exposes none).

    Looks for a ``tree_strategy``-like attribute (value, dict or zero-argument
    method) on the model and then on its ``program``.
    """
    for owner in (model, getattr(model, "program", None)):
        for attr in _STRATEGY_ATTRS:
            value = getattr(owner, attr, None)
            if callable(value):
                try:
                    value = value()
                except TypeError:
                    continue
            if value is None or value == {} or value == []:
                continue
            if isinstance(value, dict):
                return ", ".join(f"{k}={v}" for k, v in value.items())
            if isinstance(value, (list, tuple, set)):
                return ", ".join(sorted({str(v) for v in value}))
            return str(value)
    return ""


class MlejaxPeer(Peer):
    """mlejax: ``export_model`` to a ``.mle`` file, ``load_model``, ``predict_proba``.

    ``strategy`` is passed to ``load_model(tree_strategy=...)`` when this
    version of mlejax has that keyword; otherwise asking for one is n/a.
    """

    warmup_each_size = True  # one XLA program per batch bucket

    def __init__(self, threads: int, device: str | None = None, strategy: str | None = None) -> None:
        super().__init__(threads)
        self.device = device
        self.strategy = strategy
        self.name = "mlejax" if not strategy else f"mlejax[{strategy}]"

    @staticmethod
    def load_kwargs_supported() -> set[str]:
        import mlejax

        return set(inspect.signature(mlejax.load_model).parameters)

    def convert(self, model, n_classes, X, workdir):
        import mlejax

        if self.strategy and "tree_strategy" not in self.load_kwargs_supported():
            raise PeerUnavailable("this mlejax has no load_model(tree_strategy=...)")
        path = os.path.join(workdir, f"{self.name}.mle")
        try:
            mlejax.export_model(model, path)
        except Exception as exc:
            raise PeerUnavailable(f"export failed: {type(exc).__name__}: {_first_line(exc)}") from None
        return Artifact(path)

    def load(self, art):
        import mlejax

        kwargs: dict[str, Any] = {"device": self.device}
        if self.strategy:
            kwargs["tree_strategy"] = self.strategy
        return mlejax.load_model(art.path, **kwargs)

    def proba(self, loaded, X):
        return np.asarray(loaded.predict_proba(X))

    def notes(self, loaded):
        strategy = mlejax_strategy_of(loaded)
        return f"strategy: {strategy}" if strategy else ""

    @staticmethod
    def compile_seconds(loaded) -> float:
        """Seconds this model's program spent lowering + compiling so far (0 if not reported)."""
        return float(sum(getattr(loaded.program, "compile_seconds", {}).values()))


# --- registry ----------------------------------------------------------------------------------
PEER_NAMES = ("native", "ort", "hb-torch", "hb-torchscript", "tl2cgen", "mle-runtime", "mlejax")


def make_peers(
    names: list[str],
    threads: int,
    compile_timeout: float,
    mlejax_device: str | None = None,
    mlejax_strategies: list[str] | None = None,
) -> list[Peer]:
    """Peer objects for ``names`` (see :data:`PEER_NAMES`), mlejax once per strategy (``""`` = default)."""
    peers: list[Peer] = []
    for name in names:
        if name == "native":
            peers.append(NativePeer(threads))
        elif name == "ort":
            peers.append(OrtPeer(threads))
        elif name == "hb-torch":
            peers.append(HummingbirdPeer(threads, "torch"))
        elif name == "hb-torchscript":
            peers.append(HummingbirdPeer(threads, "torch.jit"))
        elif name == "tl2cgen":
            peers.append(Tl2cgenPeer(threads, compile_timeout))
        elif name == "mle-runtime":
            peers.append(MleRuntimePeer(threads))
        elif name == "mlejax":
            for strategy in mlejax_strategies or [""]:
                peers.append(MlejaxPeer(threads, mlejax_device, strategy or None))
        else:
            raise ValueError(f"unknown peer {name!r}; choose from {', '.join(PEER_NAMES)}")
    return peers


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else "")[:140]
