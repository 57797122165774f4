"""Kernel by kernel: each convolution of GANomaly's networks timed alone, on the running Keras backend.

    python -m benchmarks.kernels --output kernels-tf.json
    KERAS_BACKEND=torch python -m benchmarks.kernels --data-format channels_first --output kernels-torch.json

For every distinct convolution of the encoder, decoder and discriminator at the paper's sizes
(32x32, nz 100, 64 filters), at one batch size: the forward pass, and the backward pass (the
gradients with respect to the input and to the kernel). Comparing two backends' files shows
where one framework's kernels are slower than the other's; ``--compare A.json B.json`` prints
that table. Run both sides in one sitting, alternating: these machines drift within an hour.
The torch backend is a diagnostic here (it runs PyTorch's CPU kernels, as the official code
does); the suite itself trains on TensorFlow or JAX.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from ganomaly_tf import atomic
from ganomaly_tf.cli import documented_parser
from ganomaly_tf.constants import DTYPE_POLICIES

#: (name, kind, input channels, output channels, input size, stride, padding): every distinct
#: convolution of a GANomaly generator pass (encoder, decoder) and of the discriminator body,
#: then the BatchNorm and activation shapes that follow them.
LAYERS = (
    ("enc conv1 1->64 32->16", "conv", 1, 64, 32, 2, "same"),
    ("enc conv2 64->128 16->8", "conv", 64, 128, 16, 2, "same"),
    ("enc conv3 128->256 8->4", "conv", 128, 256, 8, 2, "same"),
    ("enc conv4 256->100 4->1", "conv", 256, 100, 4, 1, "valid"),
    ("dec convT1 100->256 1->4", "convT", 100, 256, 1, 1, "valid"),
    ("dec convT2 256->128 4->8", "convT", 256, 128, 4, 2, "same"),
    ("dec convT3 128->64 8->16", "convT", 128, 64, 8, 2, "same"),
    ("dec convT4 64->1 16->32", "convT", 64, 1, 16, 2, "same"),
    ("BatchNorm 16x16x64", "bn", 64, 64, 16, 1, ""),
    ("BatchNorm 8x8x128", "bn", 128, 128, 8, 1, ""),
    ("BatchNorm 4x4x256", "bn", 256, 256, 4, 1, ""),
    ("LeakyReLU 16x16x64", "lrelu", 64, 64, 16, 1, ""),
    ("LeakyReLU 8x8x128", "lrelu", 128, 128, 8, 1, ""),
    ("LeakyReLU 4x4x256", "lrelu", 256, 256, 4, 1, ""),
)


def make_layer(kind: str, cout: int, stride: int, padding: str, data_format: str):
    import keras

    axis = -1 if data_format == "channels_last" else 1
    if kind == "conv":
        return keras.layers.Conv2D(cout, 4, strides=stride, padding=padding, use_bias=False, data_format=data_format)
    if kind == "convT":
        return keras.layers.Conv2DTranspose(
            cout, 4, strides=stride, padding=padding, use_bias=False, data_format=data_format
        )
    if kind == "bn":
        return keras.layers.BatchNormalization(axis=axis, momentum=0.9, epsilon=1e-5)
    return keras.layers.LeakyReLU(negative_slope=0.2)


def parser() -> argparse.ArgumentParser:
    p = documented_parser("python -m benchmarks.kernels", __doc__)
    p.add_argument("--batch-size", type=int, default=64, help="images per call (default 64, the paper's)")
    p.add_argument("--data-format", choices=("channels_last", "channels_first"), default="channels_last")
    p.add_argument(
        "--dtype-policy",
        choices=DTYPE_POLICIES,
        default="float32",
        help="Keras dtype policy of the layers (mixed_bfloat16: bf16 compute, as --dtype-policy of a run)",
    )
    p.add_argument("--repeats", type=int, default=7, help="timed repeats; the median is kept (default 7)")
    p.add_argument("--inner", type=int, default=10, help="calls per timed repeat (default 10)")
    p.add_argument("--output", help="write the timings (JSON) here")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="print B's times over A's from two files, and exit")
    return p


def _timer(fn, repeats: int, inner: int) -> float:
    """Median seconds per call of ``fn`` (which returns something to wait on)."""
    for _ in range(3):
        _block(fn())
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            out = fn()
        _block(out)
        times.append((time.perf_counter() - t) / inner)
    return statistics.median(times)


def _block(out) -> None:
    import keras

    for o in out if isinstance(out, (list, tuple)) else [out]:
        keras.ops.convert_to_numpy(o)


def _passes(layer, x):
    """(forward, backward) callables of ``layer`` on ``x`` in training mode; backward returns the
    gradients with respect to ``x`` and to the layer's trainable weights."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        weights = [w.value for w in layer.trainable_weights]
        forward = tf.function(lambda: layer(x, training=True))

        @tf.function
        def backward():
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
            return tape.gradient(y, [x, *weights], output_gradients=tf.ones_like(y))

        return forward, backward
    if backend == "torch":
        import torch

        xt = x.detach().clone().requires_grad_(True)
        weights = [w.value for w in layer.trainable_weights]

        def forward():
            with torch.no_grad():
                return layer(xt, training=True)

        def backward():
            y = layer(xt, training=True)
            return torch.autograd.grad(y, [xt, *weights], torch.ones_like(y))

        return forward, backward
    raise SystemExit(f"benchmarks.kernels: backend {backend!r} is not supported; use tensorflow or torch")


def measure(batch_size: int, data_format: str, repeats: int, inner: int) -> list[dict]:
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    rows = []
    for name, kind, cin, cout, size, stride, padding in LAYERS:
        layer = make_layer(kind, cout, stride, padding, data_format)
        shape = (batch_size, size, size, cin) if data_format == "channels_last" else (batch_size, cin, size, size)
        x = keras.ops.convert_to_tensor(np.random.default_rng(0).standard_normal(shape).astype("float32"))
        layer.build(shape)
        forward, backward = _passes(layer, x)
        out = keras.ops.shape(layer(x))
        spatial = out[1:3] if data_format == "channels_last" else out[2:4]
        # MACs of a convolution: every output position of a conv, every input position of a transposed
        # one; an elementwise layer counts one per value (its GFLOP/s are only a scale).
        positions = size * size if kind == "convT" else spatial[0] * spatial[1]
        macs = batch_size * positions * (16 * cin * cout if kind.startswith("conv") else cout)
        fwd = _timer(forward, repeats, inner)
        bwd = _timer(backward, repeats, inner)
        rows.append(
            {
                "layer": name,
                "forward_ms": fwd * 1e3,
                "backward_ms": bwd * 1e3,
                "forward_gflops": 2 * macs / fwd / 1e9,
                "backward_gflops": 4 * macs / bwd / 1e9,
            }
        )
        print(
            f"{name:<26} forward {fwd * 1e3:7.2f} ms ({rows[-1]['forward_gflops']:6.1f} GFLOP/s)"
            f"   backward {bwd * 1e3:7.2f} ms ({rows[-1]['backward_gflops']:6.1f} GFLOP/s)",
            flush=True,
        )
    return rows


def compare(a_path: str, b_path: str) -> str:
    a, b = (json.loads(Path(p).read_text()) for p in (a_path, b_path))
    name_a, name_b = (f"{r['backend']} {r.get('dtype_policy', 'float32')}" for r in (a, b))
    lines = [
        f"| layer | {name_a} fwd ms | {name_b} fwd ms | ratio | {name_a} bwd ms | {name_b} bwd ms | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    totals = [0.0, 0.0, 0.0, 0.0]
    for ra, rb in zip(a["layers"], b["layers"], strict=True):
        lines.append(
            f"| {ra['layer']} | {ra['forward_ms']:.2f} | {rb['forward_ms']:.2f} "
            f"| {ra['forward_ms'] / rb['forward_ms']:.2f} | {ra['backward_ms']:.2f} | {rb['backward_ms']:.2f} "
            f"| {ra['backward_ms'] / rb['backward_ms']:.2f} |"
        )
        for i, v in enumerate((ra["forward_ms"], rb["forward_ms"], ra["backward_ms"], rb["backward_ms"])):
            totals[i] += v
    lines.append(
        f"| all | {totals[0]:.2f} | {totals[1]:.2f} | {totals[0] / totals[1]:.2f} "
        f"| {totals[2]:.2f} | {totals[3]:.2f} | {totals[2] / totals[3]:.2f} |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.compare:
        print(compare(*args.compare))
        return 0
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    keras.config.set_dtype_policy(args.dtype_policy)
    rows = measure(args.batch_size, args.data_format, args.repeats, args.inner)
    record = {
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "batch_size": args.batch_size,
        "data_format": args.data_format,
        "dtype_policy": args.dtype_policy,
        "threads": os.environ.get("OMP_NUM_THREADS") or "default",
        "layers": rows,
    }
    if args.output:
        atomic.write_json(args.output, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
