"""Every model of the suite on the running Keras backend: build, compile, one training step, scores.

    KERAS_BACKEND=jax python -m benchmarks.backend_trial     # e.g. in a virtualenv without TensorFlow

A quick check that an install works (docs/jax.md), not a benchmark: small networks (16
filters), 16 synthetic images, AnoGAN with a 5-step latent search. Prints each model's losses
and the seconds it took, compilation included, and whether TensorFlow is importable.
"""

from __future__ import annotations

import importlib.util
import time

from ganomaly_tf.cli import documented_parser


def main(argv: list[str] | None = None) -> int:
    p = documented_parser("python -m benchmarks.backend_trial", __doc__)
    p.add_argument("--filters", type=int, default=16, help="base filter count of the networks (default 16)")
    p.add_argument("--images", type=int, default=16, help="synthetic images in the batch (default 16)")
    args = p.parse_args(argv)

    import keras
    import numpy as np

    from ganomaly_tf.backends import active
    from ganomaly_tf.models.registry import MODELS, build_model

    print(f"keras {keras.__version__}, backend {keras.backend.backend()}, steps {active().__name__}")
    x = np.tanh(np.random.default_rng(0).normal(size=(args.images, 32, 32, 1))).astype("float32")
    for name in MODELS:
        start = time.perf_counter()
        model = build_model(name, filters=args.filters, **({"score_iterations": 5} if name == "anogan" else {}))
        model.default_compile()
        logs = model.train_on_batch(x, return_dict=True)
        scores = model.score(x, batch_size=args.images)
        losses = ", ".join(f"{k} {float(v):.4f}" for k, v in logs.items())
        finite = bool(np.all(np.isfinite(scores)))
        print(f"{name:9s} {losses}; {len(scores)} scores, finite: {finite} ({time.perf_counter() - start:.1f} s)")
    print("tensorflow importable:", importlib.util.find_spec("tensorflow") is not None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
