"""Fuzz ``mlejax.load_model`` and predict: mutated, truncated and spliced ``.mle`` files must load and run or raise an MLEError.

Seeds are valid files: plain, zstd-compressed, version 1, signed, encrypted
(raw key, small AES-GCM chunks), and signed + encrypted + compressed; each is
loaded the way a user would (with its public key and/or key) and, for signed
files, also without verification so that the deeper parsers are reached.
Mutations are bit flips, byte overwrites, truncation, insertion, deletion,
splices from other seeds, and optionally recomputed CRCs (so a mutation gets
past the checksums to the section decoders, the tensor index and the graph).

Every model that loads is then run on a small batch (all graph outputs, two
rows of ordinary and extreme values), so attributes, shapes and labels a
file gets wrong are reached too. A finding is any exception that is not an
``MLEError`` at load or at predict, or a load and predict slower than
``--max-seconds``. Crashes (segfaults) end the process; atheris then
writes the crashing input to disk.

Usage:
    python benchmarks/fuzz_loader.py --runs 1000000            # atheris if installed, else hypothesis
    python benchmarks/fuzz_loader.py --engine hypothesis --runs 20000
    python benchmarks/fuzz_loader.py --replay crash-<hash>    # re-run one saved input (.mle file or atheris input)

``tests/test_fuzz_loader.py`` runs the hypothesis engine for a bounded time
in the default test suite.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from mle_bytes import build, fix_checksums, flags_of, sections_of  # noqa: E402  (spec-derived, shared with the tests)

from mlejax.progress import bar  # noqa: E402

KEY = bytes(range(32))
#: Decompression limit for fuzzed loads: a bomb must be refused, not allocated.
MAX_DECOMPRESSED = 16 << 20


@dataclass
class Seed:
    """A valid file and the load_model keyword arguments that open it."""

    name: str
    data: bytes
    loads: list[dict] = field(default_factory=list)


def build_seeds(workdir: str) -> list[Seed]:
    """Export a few small models in every container variant (needs scikit-learn)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    import mlejax as mle
    from mlejax import SecurityUtils
    from mlejax.format.container import encrypt_file, sign_file
    from mlejax.format.encryption import Encryption

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3)).astype(np.float32)
    X[::7, 1] = np.nan
    clf = LogisticRegression().fit(np.nan_to_num(X), np.where(X[:, 0] > 0, "a", "b"))
    reg = DecisionTreeRegressor(max_depth=3, random_state=0).fit(X, X[:, 0] * 2)
    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, (X[:, 2] > 0) + (X[:, 0] > 0.5))  # int classes
    public, private = SecurityUtils.generate_keypair()

    def path(name: str) -> str:
        return os.path.join(workdir, name)

    mle.export_model(clf, path("plain.mle"), metadata={"loader": "os.system"})
    mle.export_model(reg, path("zstd.mle"), compression="zstd")
    mle.export_model(tree, path("signed.mle"))
    sign_file(path("signed.mle"), private)
    mle.export_model(clf, path("encrypted.mle"))
    encrypt_file(path("encrypted.mle"), Encryption.with_key(KEY, chunk_size=48))
    mle.export_model(reg, path("all.mle"), compression="zstd")
    encrypt_file(path("all.mle"), Encryption.with_key(KEY, chunk_size=40))
    sign_file(path("all.mle"), private)
    with open(path("plain.mle"), "rb") as fh:
        v1 = build(sections_of(fh.read()), version=1)

    def read(name: str) -> bytes:
        with open(path(name), "rb") as fh:
            return fh.read()

    verify = {"verify_signature": True, "public_key": public}
    return [
        Seed("plain", read("plain.mle"), [{}]),
        Seed("zstd", read("zstd.mle"), [{}]),
        Seed("v1", v1, [{}]),
        Seed("signed", read("signed.mle"), [verify, {}]),
        Seed("encrypted", read("encrypted.mle"), [{"key": KEY}]),
        Seed("signed+encrypted+zstd", read("all.mle"), [{**verify, "key": KEY}, {"key": KEY}]),
    ]


class Mutator:
    """Byte-level mutations of seeds, driven by a ``random.Random``-like source."""

    def __init__(self, seeds: list[Seed]) -> None:
        self.seeds = seeds
        #: seeds whose msgpack sections are stored as is and that load without a key
        self.editable = [
            s for s in seeds if {} in s.loads and all(f == 0 for k, f, _, _ in sections_of(s.data) if k <= 4)
        ]

    def mutate(self, rnd: random.Random) -> tuple[bytes, dict]:
        seed = rnd.choice(self.seeds)
        if rnd.random() < 0.3:
            return _edit_sections(rnd.choice(self.editable).data, rnd), {}
        data = bytearray(seed.data)
        for _ in range(rnd.randint(1, 4)):
            op = rnd.randrange(7)
            n = len(data)
            at = rnd.randrange(n + 1)
            if op == 0 and n:
                data[min(at, n - 1)] ^= 1 << rnd.randrange(8)
            elif op == 1 and n:
                data[min(at, n - 1)] = rnd.choice([0, 0xFF, 0x7F, 0x80, rnd.randrange(256)])
            elif op == 2:
                del data[at:]
            elif op == 3:
                data[at:at] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 16)))
            elif op == 4:
                del data[at : at + rnd.randint(1, 64)]
            elif op == 5:
                donor = rnd.choice(self.seeds).data
                start = rnd.randrange(len(donor))
                piece = donor[start : start + rnd.randint(1, 256)]
                data[at : at + (len(piece) if rnd.random() < 0.5 else 0)] = piece
            else:  # overwrite a little-endian integer field with an extreme value
                width = rnd.choice([2, 4, 8])
                value = rnd.choice([0, 1, 2**(8 * width) - 1, 2**(8 * width - 1), rnd.randrange(2**(8 * width))])
                data[at : at + width] = value.to_bytes(width, "little")
        if rnd.random() < 0.6:
            data = bytearray(_fix(bytes(data)))
        return bytes(data), rnd.choice(seed.loads)


_ODD_VALUES: list[Any] = [
    None, True, False, 0, -1, 1, 2**31, -(2**31) - 1, 2**63 - 1, -(2**63), 2**64 - 1, 0.5, -0.0,
    float("nan"), float("inf"), -float("inf"), 1e308, "", "x", "os.system", "float32", "int64", "bfloat16",
    "TreeEnsemble", "label", "|O", "<U0", b"", b"\x00" * 8, [], [None], [1, 2, 3], {}, {"": None}, {"op": "Relu"},
]


def _random_value(rnd: random.Random, like: Any) -> Any:
    """An odd replacement for ``like``: a value of the same type nudged, or anything plain."""
    if isinstance(like, bool) or rnd.random() < 0.4:
        return rnd.choice(_ODD_VALUES)
    if isinstance(like, int):
        return like + rnd.choice([-1, 1, -like, 2**32, rnd.randrange(-5, 6)])
    if isinstance(like, str):
        return rnd.choice([like + "x", like[:-1], like.upper(), like * 2])
    if isinstance(like, list) and like:
        return rnd.choice([like[:-1], like + [like[-1]], like[::-1], [like]])
    return rnd.choice(_ODD_VALUES)


def _edit_sections(data: bytes, rnd: random.Random) -> bytes:
    """Decode a msgpack section of an uncompressed, unencrypted file, change one value deep inside, re-encode."""
    import msgpack

    secs = sections_of(data)
    sec = rnd.choice([s for s in secs if s[0] in (1, 2, 3)])
    value = msgpack.unpackb(sec[2], raw=False, strict_map_key=False)
    holder, key, node = None, None, value
    for _ in range(rnd.randint(0, 8)):  # walk down a random path
        if isinstance(node, dict) and node:
            holder, key = node, rnd.choice(list(node))
        elif isinstance(node, list) and node:
            holder, key = node, rnd.randrange(len(node))
        else:
            break
        node = holder[key]
    if holder is None:
        value = _random_value(rnd, value)
    elif isinstance(holder, dict) and rnd.random() < 0.15:
        del holder[key]
    elif isinstance(holder, dict) and rnd.random() < 0.1:
        holder[rnd.choice(["extra", "__class__", "version", "inputs", "op"])] = _random_value(rnd, None)
    else:
        holder[key] = _random_value(rnd, node)
    sec[2] = msgpack.packb(value, use_bin_type=True)
    sec[3] = len(sec[2])
    return build(secs, version=int.from_bytes(data[8:12], "little"), flags=flags_of(data))


def _fix(data: bytes) -> bytes:
    """Recompute checksums where the table is readable enough; leave the bytes alone otherwise."""
    try:
        return fix_checksums(data)
    except Exception:  # noqa: BLE001 - the table itself may be garbage; then fuzz the raw bytes
        return data


class Loader:
    """Writes each input to one scratch file, loads it with ``mlejax.load_model`` and runs it on a small batch."""

    def __init__(self, workdir: str) -> None:
        self.path = os.path.join(workdir, "input.mle")
        self.successes = 0
        self.errors: dict[str, int] = {}

    def load(self, data: bytes, kwargs: dict) -> None:
        """Load and run one input; return normally for a valid model or an MLEError, raise anything else."""
        import mlejax as mle

        with open(self.path, "wb") as fh:
            fh.write(data)
        try:
            model = mle.load_model(self.path, max_decompressed_bytes=MAX_DECOMPRESSED, **kwargs)
            assert isinstance(model, mle.Model) and model.methods and model.graph.nodes is not None
            outputs = model.run(_batch(model))
        except mle.MLEError as e:
            name = type(e).__name__
            self.errors[name] = self.errors.get(name, 0) + 1
            return
        assert len(outputs) == len(model.outputs) and all(len(o) == 2 for o in outputs)
        self.successes += 1


def _batch(model: Any) -> list[np.ndarray]:
    """Two rows for every graph input: ordinary values, then extreme ones (finite: NaN is refused by some models)."""
    arrays = []
    for info in model.graph.inputs:
        a = np.zeros((2, *info.shape[1:]), np.dtype(info.dtype))
        flat = a.reshape(2, -1)
        if a.dtype.kind == "f":
            flat[0] = np.linspace(-1.5, 2.5, flat.shape[1])
            flat[1] = np.where(np.arange(flat.shape[1]) % 2, 1e30, -1e30)
        else:
            flat[0] = np.arange(flat.shape[1]) % 2
        arrays.append(a)
    return arrays


def run_hypothesis(loader: Loader, mutator: Mutator, runs: int, max_seconds: float, seed: int | None = None, derandomize: bool = False) -> int:
    """Run ``runs`` hypothesis examples; raise on the first finding (hypothesis shrinks it). Returns the count."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    count = 0

    @settings(max_examples=runs, deadline=None, database=None, derandomize=derandomize,
              suppress_health_check=list(HealthCheck), print_blob=True)
    @given(st.randoms(use_true_random=False))
    def prop(rnd: random.Random) -> None:
        nonlocal count
        count += 1
        data, kwargs = mutator.mutate(rnd)
        start = time.perf_counter()
        loader.load(data, kwargs)
        elapsed = time.perf_counter() - start
        assert elapsed < max_seconds, f"load and predict took {elapsed:.1f}s (limit {max_seconds}s)"

    if seed is not None:
        from hypothesis import seed as hyp_seed

        prop = hyp_seed(seed)(prop)
    prop()
    return count


def run_atheris(loader: Loader, mutator: Mutator, runs: int, workdir: str, instrument: bool) -> None:
    """libFuzzer-driven fuzzing; exits the process when done. A finding is saved as ``crash-<sha1>``.

    A quarter of the inputs are a seed's prefix followed by libFuzzer's own
    bytes, the rest our structured mutations seeded by libFuzzer's bytes. With
    ``instrument``, mlejax's own functions are coverage-instrumented (slower,
    but libFuzzer then steers towards new code paths in the loader).
    """
    import atheris

    def one(data: bytes) -> None:
        loader.load(*atheris_input(data, mutator))

    if instrument:
        _instrument_mlejax(atheris)
    atheris.Setup([sys.argv[0], f"-runs={runs}", "-rss_limit_mb=4096", "-timeout=30", "-print_final_stats=1"], one)
    atheris.Fuzz()


def atheris_input(data: bytes, mutator: Mutator) -> tuple[bytes, dict]:
    """The file and load arguments that libFuzzer's ``data`` stands for (see :func:`run_atheris`)."""
    seeds = mutator.seeds
    if len(data) > 4 and data[0] % 4 == 0:  # a seed, cut short, followed by libFuzzer's own bytes
        seed = seeds[data[1] % len(seeds)]
        keep = len(seed.data) - int.from_bytes(data[2:4], "little") % len(seed.data)
        raw = seed.data[:keep] + data[4:]
        return (_fix(raw) if data[0] & 4 else raw), seed.loads[0]
    return mutator.mutate(random.Random(data))  # our structured mutations, seeded by libFuzzer's bytes


def _instrument_mlejax(atheris: Any) -> None:
    """Coverage-instrument the functions and methods of every loaded ``mlejax`` module (not its dependencies)."""
    import inspect

    count = 0
    for name, module in list(sys.modules.items()):
        if not name.startswith("mlejax") or name == "mlejax_fuzz_loader":
            continue
        for obj in list(vars(module).values()):
            members = vars(obj).values() if inspect.isclass(obj) else [obj]
            for fn in members:
                fn = getattr(fn, "__func__", fn)
                if inspect.isfunction(fn) and fn.__module__ == name:
                    atheris.instrument_func(fn)
                    count += 1
    print(f"instrumented {count} mlejax functions", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=1_000_000)
    p.add_argument("--engine", choices=["auto", "atheris", "hypothesis", "random"], default="auto")
    p.add_argument("--max-seconds", type=float, default=10.0, help="a slower load and predict of one input is a finding")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--report-every", type=int, default=50_000)
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                   help="random engine: no progress bar (the default draws one when stderr is a terminal)")
    p.add_argument("--replay", help="load one saved input file (with each load mode of every seed kind)")
    p.add_argument("--instrument", action="store_true", help="atheris: coverage-instrument mlejax's code")
    args = p.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="mlejax-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    seeds = build_seeds(workdir)
    loader, mutator = Loader(workdir), Mutator(seeds)
    if args.replay:  # a .mle file (loaded with every seed's load arguments) or an atheris input
        with open(args.replay, "rb") as fh:
            data = fh.read()
        if data.startswith(b"\x89MLE"):
            for kwargs in [k for s in seeds for k in s.loads]:
                loader.load(data, kwargs)
        else:
            loader.load(*atheris_input(data, mutator))
        print("no finding", loader.errors, loader.successes)
        return 0
    engine = args.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401

            engine = "atheris"
        except ImportError:
            engine = "hypothesis"
    start = time.time()
    print(f"fuzzing mlejax.load_model with {engine}: {args.runs} inputs, seeds {[s.name for s in seeds]}", flush=True)
    if engine == "atheris":
        run_atheris(loader, mutator, args.runs, workdir, args.instrument)
        return 0
    done = 0
    if engine == "hypothesis":
        while done < args.runs:  # hypothesis caps one run's examples; run in batches
            batch = min(args.report_every, args.runs - done)
            done += run_hypothesis(loader, mutator, batch, args.max_seconds, seed=(args.seed or 0) + done)
            _progress(done, start, loader)
    else:
        rnd = random.Random(args.seed)
        for done in bar(range(1, args.runs + 1), total=args.runs, desc="fuzz", unit="input", progress=args.progress):
            data, kwargs = mutator.mutate(rnd)
            try:
                loader.load(data, kwargs)
            except Exception:
                path = os.path.join(os.getcwd(), f"fuzz-finding-{done}.mle")
                with open(path, "wb") as fh:
                    fh.write(data)
                print(f"FINDING at input {done} (kwargs {sorted(kwargs)}), saved to {path}", flush=True)
                traceback.print_exc()
                return 1
            if done % args.report_every == 0:
                _progress(done, start, loader)
    _progress(done, start, loader)
    return 0


def _progress(done: int, start: float, loader: Loader) -> None:
    rate = done / max(time.time() - start, 1e-9)
    print(f"{done} inputs, {rate:.0f}/s, {loader.successes} loaded, errors {loader.errors}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
