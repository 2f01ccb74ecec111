"""Vision networks: mlejax against torch on CPU, batch 1 and batch 32.

Builds convolutional networks in torch with random weights and randomised
batch-norm statistics (so that layout and folding bugs show), exports each
with ``mlejax.export_model``, loads it and prints one markdown row per model:
export time, file size, the largest error against torch relative to
max|torch| (over batches 1 and 32), and the median time of a batch-1 and a
batch-32 call for mlejax and for torch, with their ratio (torch / mlejax:
above 1 means mlejax is faster).

torch runs with ``torch.set_num_threads(--torch-threads)`` (1 by default, the
issue's reference) under ``torch.no_grad()``; mlejax runs XLA:CPU with its
default threading (all cores). The models are written here, modelled on
torchvision's, so that no torchvision is needed: ``lenet`` (28x28 gray),
``resnet18``, ``mobilenet_v2``, ``mobilenet_v3_small``, ``efficientnet_b0``,
``shufflenet`` and ``convnext_block``. With ``--timm``, timm's own models
(``timm.create_model(name, pretrained=False)``) are added when timm imports.

Usage:
    python benchmarks/networks.py                           # the whole set, about 10 min on 2 busy cores
    python benchmarks/networks.py --models resnet18,lenet --repeats 5
    python benchmarks/networks.py --timm resnet18,mobilenetv3_small_100 --size 64
    python benchmarks/networks.py --baseline                # lax.conv for every Conv, to compare

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from typing import Callable

import numpy as np

from _timing import median_ms  # benchmarks/ is the script directory


def _warm_median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm: compile, caches
    return median_ms(fn, repeats)


# --- models ---------------------------------------------------------------------------------------------


def _models() -> dict[str, tuple[Callable, tuple[int, ...]]]:
    """name -> (builder, input shape without batch)."""
    import torch
    from torch import nn

    def cbr(cin, cout, k, s=1, groups=1, act=nn.ReLU):
        return nn.Sequential(nn.Conv2d(cin, cout, k, s, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), act() if act else nn.Identity())

    class Basic(nn.Module):
        def __init__(self, cin, cout, s):
            super().__init__()
            self.a = cbr(cin, cout, 3, s)
            self.b = cbr(cout, cout, 3, act=None)
            self.down = cbr(cin, cout, 1, s, act=None) if s != 1 or cin != cout else nn.Identity()

        def forward(self, x):
            return torch.relu(self.b(self.a(x)) + self.down(x))

    def resnet18():
        layers = [cbr(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)]
        cin = 64
        for cout, s in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [Basic(cin, cout, s), Basic(cout, cout, 1)]
            cin = cout
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 1000))

    class SE(nn.Module):
        def __init__(self, c, r, gate=nn.Sigmoid, act=nn.ReLU):
            super().__init__()
            self.f = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, r, 1), act(), nn.Conv2d(r, c, 1), gate())

        def forward(self, x):
            return x * self.f(x)

    class MB(nn.Module):
        """Inverted residual: expand 1x1 to ``mid``, depthwise kxk, squeeze-excite to ``se`` channels (0: none), project 1x1."""

        def __init__(self, cin, mid, cout, k, s, act, se=0, gate=nn.Sigmoid, se_act=nn.ReLU):
            super().__init__()
            parts = [] if mid == cin else [cbr(cin, mid, 1, act=act)]
            parts += [cbr(mid, mid, k, s, groups=mid, act=act)]
            if se:
                parts.append(SE(mid, se, gate, se_act))
            parts.append(cbr(mid, cout, 1, act=None))
            self.body = nn.Sequential(*parts)
            self.res = s == 1 and cin == cout

        def forward(self, x):
            y = self.body(x)
            return x + y if self.res else y

    def mobilenet_v2():
        cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
        layers, cin = [cbr(3, 32, 3, 2, act=nn.ReLU6)], 32
        for t, c, n, s in cfg:
            for i in range(n):
                layers.append(MB(cin, cin * t, c, 3, s if i == 0 else 1, nn.ReLU6))
                cin = c
        layers += [cbr(cin, 1280, 1, act=nn.ReLU6), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, 1000)]
        return nn.Sequential(*layers)

    def mobilenet_v3_small():
        hs, re = nn.Hardswish, nn.ReLU
        cfg = [(3, 16, 16, True, re, 2), (3, 72, 24, False, re, 2), (3, 88, 24, False, re, 1), (5, 96, 40, True, hs, 2),
               (5, 240, 40, True, hs, 1), (5, 240, 40, True, hs, 1), (5, 120, 48, True, hs, 1), (5, 144, 48, True, hs, 1),
               (5, 288, 96, True, hs, 2), (5, 576, 96, True, hs, 1), (5, 576, 96, True, hs, 1)]
        layers, cin = [cbr(3, 16, 3, 2, act=hs)], 16
        for k, mid, cout, se, act, s in cfg:
            layers.append(MB(cin, mid, cout, k, s, act, max(8, (mid // 4 + 4) // 8 * 8) if se else 0, nn.Hardsigmoid))
            cin = cout
        layers += [cbr(cin, 576, 1, act=hs), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(576, 1024), hs(), nn.Linear(1024, 1000)]
        return nn.Sequential(*layers)

    def efficientnet_b0():
        cfg = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
        layers, cin = [cbr(3, 32, 3, 2, act=nn.SiLU)], 32
        for t, k, s, c, n in cfg:
            for i in range(n):
                layers.append(MB(cin, cin * t, c, k, s if i == 0 else 1, nn.SiLU, max(1, cin // 4), nn.Sigmoid, nn.SiLU))
                cin = c
        layers += [cbr(cin, 1280, 1, act=nn.SiLU), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, 1000)]
        return nn.Sequential(*layers)

    class Shuffle(nn.Module):
        def __init__(self, c, s):
            super().__init__()
            self.s = s
            half = c // 2
            cin = c if s == 2 else half
            self.branch = nn.Sequential(cbr(cin, half, 1), cbr(half, half, 3, s, groups=half, act=None), cbr(half, half, 1))
            self.side = nn.Sequential(cbr(c, c, 3, s, groups=c, act=None), cbr(c, half, 1)) if s == 2 else None

        def forward(self, x):
            if self.s == 1:
                a, b = x.chunk(2, dim=1)
                y = torch.cat([a, self.branch(b)], 1)
            else:
                y = torch.cat([self.side(x), self.branch(x)], 1)
            n, c, h, w = y.shape
            return y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)

    def shufflenet():
        layers = [cbr(3, 24, 3, 2), nn.MaxPool2d(3, 2, 1), cbr(24, 116, 1)]
        c = 116
        for cout, n in ((116, 4), (232, 8), (464, 4)):
            if cout != c:
                layers.append(cbr(c, cout, 1))
                c = cout
            layers += [Shuffle(c, 2 if i == 0 else 1) for i in range(n)]
        layers += [cbr(c, 1024, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1024, 1000)]
        return nn.Sequential(*layers)

    class ConvNeXt(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
            self.norm = nn.LayerNorm(c)
            self.mlp = nn.Sequential(nn.Linear(c, 4 * c), nn.GELU(), nn.Linear(4 * c, c))

        def forward(self, x):
            y = self.dw(x).permute(0, 2, 3, 1)
            return x + self.mlp(self.norm(y)).permute(0, 3, 1, 2)

    def convnext_block():
        return nn.Sequential(nn.Conv2d(3, 96, 4, 4), *[ConvNeXt(96) for _ in range(3)], nn.Conv2d(96, 192, 2, 2),
                             *[ConvNeXt(192) for _ in range(3)], nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(192, 1000))

    def lenet():
        return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.AvgPool2d(2),
                             nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))

    return {
        "lenet": (lenet, (1, 28, 28)),
        "resnet18": (resnet18, (3, 64, 64)),
        "mobilenet_v2": (mobilenet_v2, (3, 128, 128)),
        "mobilenet_v3_small": (mobilenet_v3_small, (3, 224, 224)),
        "efficientnet_b0": (efficientnet_b0, (3, 128, 128)),
        "shufflenet": (shufflenet, (3, 128, 128)),
        "convnext_block": (convnext_block, (3, 64, 64)),
    }


def _randomise(model) -> None:
    """Random batch-norm statistics and affine terms (eval mode then uses them)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.2)


# --- the run --------------------------------------------------------------------------------------------


def bench(name: str, model, shape: tuple[int, ...], repeats: int, batch: int) -> dict:
    """Export, load, check and time one model; return its row."""
    import torch

    import mlejax as mle

    model.eval()
    _randomise(model)
    rng = np.random.default_rng(0)
    x1 = rng.standard_normal((1, *shape)).astype(np.float32)
    xb = rng.standard_normal((batch, *shape)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{name}.mle")
        start = time.perf_counter()
        mle.export_model(model, path, sample_input=xb[:3])
        export_s = time.perf_counter() - start
        size_mb = os.path.getsize(path) / 1e6
        loaded = mle.load_model(path)
        with torch.no_grad():
            t1, tb = torch.from_numpy(x1), torch.from_numpy(xb)
            ref1, refb = model(t1).numpy(), model(tb).numpy()
            err = max(float(np.abs(loaded.predict(x) - r).max() / np.abs(r).max()) for x, r in ((x1, ref1), (xb, refb)))
            times = {
                "torch_1": _warm_median_ms(lambda: model(t1), repeats),
                "mle_1": _warm_median_ms(lambda: loaded.predict(x1), repeats),
                "torch_b": _warm_median_ms(lambda: model(tb), repeats),
                "mle_b": _warm_median_ms(lambda: loaded.predict(xb), repeats),
            }
    return {"model": name, "input": "x".join(map(str, shape)), "export_s": export_s, "size_mb": size_mb, "err": err, **times}


def _row(r: dict) -> str:
    return (f"| {r['model']} | {r['input']} | {r['export_s']:.1f} s | {r['size_mb']:.1f} MB | {r['err']:.1e} | "
            f"{r['mle_1']:.2f} | {r['torch_1']:.2f} | {r['torch_1'] / r['mle_1']:.2f}x | "
            f"{r['mle_b']:.1f} | {r['torch_b']:.1f} | {r['torch_b'] / r['mle_b']:.2f}x |")


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run every model and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="all", help="comma-separated names from the built-in set, or 'all' or ''")
    parser.add_argument("--timm", default="", help="comma-separated timm model names (skipped when timm does not import)")
    parser.add_argument("--size", type=int, default=0, help="image side for every RGB model (0: each model's default)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--baseline", action="store_true", help="lax's convolution for every Conv (the lowering before issue 18)")
    args = parser.parse_args(argv)

    import jax
    import torch

    import mlejax as mle

    torch.set_num_threads(args.torch_threads)
    if args.baseline:
        from mlejax.lowering import conv_paths

        conv_paths.plan = lambda *a, **k: "lax"
    builtin = _models()
    names = list(builtin) if args.models == "all" else [n for n in args.models.split(",") if n]
    todo = []
    for n in names:
        build, shape = builtin[n]
        if args.size and shape[0] == 3:
            shape = (3, args.size, args.size)
        todo.append((n, build, shape))
    if args.timm:
        try:
            import timm
        except Exception as exc:  # timm imports torchvision pieces in some versions
            print(f"timm skipped: {type(exc).__name__}: {exc}", file=sys.stderr)
        else:
            side = args.size or 224
            for n in args.timm.split(","):
                todo.append((f"timm:{n}", lambda n=n: timm.create_model(n, pretrained=False), (3, side, side)))

    print(f"mlejax {mle.__version__}, jax {jax.__version__}, torch {torch.__version__} ({args.torch_threads} thread(s)), "
          f"{os.cpu_count()} cores, {platform.machine()}; median of {args.repeats}; batch {args.batch}\n")
    print(f"| model | input | export | file | max err / max\\|ref\\| | mlejax b1 ms | torch b1 ms | torch/mlejax | "
          f"mlejax b{args.batch} ms | torch b{args.batch} ms | torch/mlejax |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    ratios = []
    for name, build, shape in todo:
        torch.manual_seed(0)
        try:
            r = bench(name, build(), shape, args.repeats, args.batch)
        except Exception as exc:  # one model failing should not stop the table
            print(f"| {name} | failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]} |", flush=True)
            continue
        ratios.append((r["torch_1"] / r["mle_1"], r["torch_b"] / r["mle_b"]))
        print(_row(r), flush=True)
    if ratios:
        print(f"\nmedian torch/mlejax: batch 1 {statistics.median(a for a, _ in ratios):.2f}x, "
              f"batch {args.batch} {statistics.median(b for _, b in ratios):.2f}x; "
              f"worst batch {args.batch} {min(b for _, b in ratios):.2f}x")


if __name__ == "__main__":
    main()
