"""Where a GANomaly training step's time goes, per network, with achieved GFLOP/s.

    python -m benchmarks.step_profile --batch-size 64

Times, as compiled ``tf.function``s at the paper's sizes: each network's forward pass, the
whole training step and scoring; and counts each network's multiply-adds analytically, so
the achieved arithmetic rate shows how close to the CPU's limit the step runs.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

from ganomaly_tf.cli import documented_parser
from ganomaly_tf.constants import DTYPE_POLICIES


def conv_macs(model, batch: int) -> int:
    """Multiply-accumulates of a network's Conv2D/Conv2DTranspose layers for ``batch`` images."""
    import keras

    total = 0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.Conv2DTranspose):
            h, w, _ = layer.input.shape[1:]
            kh, kw, cout, cin = layer.kernel.shape
            total += h * w * kh * kw * cin * cout
        elif isinstance(layer, keras.layers.Conv2D):
            oh, ow, cout = layer.output.shape[1:]
            kh, kw, cin, _ = layer.kernel.shape
            total += oh * ow * kh * kw * cin * cout
    return total * batch


def median_time(fn, *args, repeats: int = 7, inner: int = 5) -> float:
    fn(*args)
    fn(*args)  # traced and warm
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            out = fn(*args)
        _ = [o.numpy() for o in (out if isinstance(out, (list, tuple)) else [out])]
        times.append((time.perf_counter() - t) / inner)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = documented_parser("python -m benchmarks.step_profile", __doc__)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--score-batch-size", type=int, default=1024)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--dtype-policy", default="float32", choices=DTYPE_POLICIES)
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    from ganomaly_tf.backends.tensorflow import train_step
    from ganomaly_tf.models import GANomaly

    keras.config.set_dtype_policy(args.dtype_policy)
    keras.utils.set_random_seed(0)
    model = GANomaly(channels=args.channels)
    model.default_compile()
    b = args.batch_size
    x = tf.constant(np.random.default_rng(0).uniform(-1, 1, (b, 32, 32, args.channels)).astype("float32"))
    xs = tf.constant(np.random.default_rng(1).uniform(-1, 1, (args.score_batch_size, 32, 32, args.channels)), "float32")
    z = model.encoder1(x)
    nets = {
        "encoder1": (model.encoder1, x),
        "decoder": (model.decoder, z),
        "encoder2": (model.encoder2, x),
        "discriminator": (model.discriminator, x),
    }
    print(
        f"batch {b}, {args.dtype_policy}, {tf.config.threading.get_intra_op_parallelism_threads() or 'default'} threads"
    )
    fwd_total = 0.0
    for name, (net, inp) in nets.items():
        f = tf.function(lambda t, net=net: net(t, training=True))
        s = median_time(f, inp)
        macs = conv_macs(net, b)
        fwd_total += s * (2 if name == "discriminator" else 1)
        print(
            f"  forward {name:<14} {s * 1e3:7.1f} ms  {2 * macs / s / 1e9:6.1f} GFLOP/s"
            f"  ({macs / b / 1e6:.1f} M MAC/img)"
        )
    step = tf.function(lambda t: train_step(model, t))
    s = median_time(lambda t: list(step(t).values()), x)
    fwd_macs = sum(conv_macs(n, b) * (2 if k == "discriminator" else 1) for k, (n, _) in nets.items())
    # Backward ≈ 2x forward, less the input gradients nobody needs (first convs, D on real).
    print(f"  forward, all five passes  {fwd_total * 1e3:7.1f} ms")
    print(
        f"  training step             {s * 1e3:7.1f} ms  = {b / s:6.1f} images/s;"
        f"  ~{3 * 2 * fwd_macs / s / 1e9:.1f} GFLOP/s"
    )
    sc = tf.function(lambda t: model.anomaly_score(t))
    s = median_time(sc, xs, inner=2)
    score_macs = sum(conv_macs(n, 1) for n in (model.encoder1, model.decoder, model.encoder2))
    print(
        f"  scoring (batch {args.score_batch_size})      {s * 1e3:7.1f} ms"
        f"  = {args.score_batch_size / s:6.1f} images/s;"
        f"  {2 * score_macs * args.score_batch_size / s / 1e9:.1f} GFLOP/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
