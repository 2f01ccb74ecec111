"""Load-time cost of signature verification on a ~100 MB model.

Usage: python benchmarks/signing_cost.py [--mb 100]
Writes a signed .mle file holding one float32 tensor of about --mb megabytes,
then times (median of 7) ``load_model`` without and with ``verify_signature``.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np

import mlejax as mle
from _timing import median_ms  # benchmarks/ is the script directory
from mlejax.format import write_mle


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=int, default=100)
    args = p.parse_args()
    n = args.mb * (1 << 20) // 4
    side = int(np.sqrt(n))
    tmp = tempfile.mkdtemp(prefix="mlejax-sign-")
    path = os.path.join(tmp, "big.mle")
    w = np.random.default_rng(0).standard_normal((side, side), dtype=np.float32)
    graph = {
        "inputs": [{"name": "X", "dtype": "float32", "shape": [None, side], "feature_names": None}],
        "nodes": [{"op": "MatMul", "version": 1, "name": "mm", "inputs": ["X", "w"], "outputs": ["y"], "attrs": {}}],
        "outputs": {"output": "y"},
    }
    write_mle(path, metadata={"methods": {"predict": "output"}}, graph=graph, tensors={"w": w})
    public, private = mle.SecurityUtils.generate_keypair()
    mle.SecurityUtils.sign_model(path, private)
    size = os.path.getsize(path)
    plain = median_ms(lambda: mle.load_model(path, verify_signature=False))
    verified = median_ms(lambda: mle.load_model(path, verify_signature=True, public_key=public))
    print(f"file {size / 1e6:.1f} MB: load {plain:.1f} ms unverified, {verified:.1f} ms verified "
          f"(+{verified - plain:.1f} ms for Ed25519 over SHA-512 of the whole file)")


if __name__ == "__main__":
    main()
