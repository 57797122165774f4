"""Training and scoring speed, images/s, per model and channel count.

    python -m benchmarks.throughput --models ganomaly --channels 1 --batch-size 64 --output speed.json

Warm-up (tracing, the first epoch) is excluded; each figure is the median of ``--repeats``
timed repeats. Inputs are preprocessed-shape random images: speed does not depend on content.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from ganomaly_tf import atomic
from ganomaly_tf.cli import at_least, documented_parser
from ganomaly_tf.constants import DTYPE_POLICIES, MODEL_NAMES


def parser() -> argparse.ArgumentParser:
    p = documented_parser("python -m benchmarks.throughput", __doc__)
    p.add_argument("--models", nargs="+", choices=MODEL_NAMES, default=list(MODEL_NAMES), help="models to time")
    p.add_argument("--channels", nargs="+", type=int, choices=(1, 3), default=[1, 3], help="image channels (1 3)")
    p.add_argument("--batch-size", type=at_least(1), default=64, help="training batch (default 64, the paper's)")
    p.add_argument("--score-batch-size", type=at_least(1), default=1024, help="scoring batch (default 1024)")
    p.add_argument("--steps", type=at_least(1), default=20, help="training steps per timed repeat (default 20)")
    p.add_argument("--score-images", type=at_least(1), default=4096, help="images per timed scoring repeat")
    p.add_argument("--repeats", type=at_least(1), default=5, help="timed repeats; the median is reported (default 5)")
    p.add_argument("--steps-per-execution", type=at_least(1), default=1)
    p.add_argument("--jit-compile", action="store_true", help="compile training and scoring with XLA")
    p.add_argument("--dtype-policy", default="float32", choices=DTYPE_POLICIES)
    p.add_argument("--anogan-iterations", type=at_least(0), default=50, help="AnoGAN latent iterations when scoring")
    p.add_argument("--output", help="write the records (JSON list) here")
    p.add_argument("--csv", help="also write the records as CSV (e.g. results/throughput.csv)")
    return p


def measure(
    model_name: str,
    channels: int,
    *,
    batch_size: int = 64,
    score_batch_size: int = 1024,
    steps: int = 20,
    score_images: int = 4096,
    repeats: int = 5,
    steps_per_execution: int = 1,
    jit_compile: bool = False,
    model_options: dict | None = None,
) -> dict:
    """Median training and scoring images/s of one model at the paper's network sizes."""
    import keras
    import numpy as np

    from ganomaly_tf.backends.tensorflow import make_dataset
    from ganomaly_tf.models.registry import build_model

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x_train = rng.uniform(-1, 1, (batch_size * steps, 32, 32, channels)).astype("float32")
    x_score = rng.uniform(-1, 1, (score_images, 32, 32, channels)).astype("float32")
    model = build_model(model_name, channels=channels, **(model_options or {}))
    model.default_compile(steps_per_execution=steps_per_execution, jit_compile=jit_compile)
    ds = make_dataset(x_train, batch_size, shuffle=False, drop_remainder=True).cache()

    times: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self._t)

    model.fit(ds, epochs=repeats + 1, verbose=0, shuffle=False, callbacks=[Timer()])
    train_s = statistics.median(times[1:])
    model.score(x_score[: min(score_batch_size, 64)], batch_size=score_batch_size)  # warm-up: tracing
    score_times = []
    for _ in range(repeats):
        t = time.perf_counter()
        model.score(x_score, batch_size=score_batch_size)
        score_times.append(time.perf_counter() - t)
    score_s = statistics.median(score_times)
    return {
        "model": model_name,
        "channels": channels,
        "batch_size": batch_size,
        "score_batch_size": score_batch_size,
        "steps_per_execution": steps_per_execution,
        "jit_compile": jit_compile,
        "train_images_per_s": batch_size * steps / train_s,
        "score_images_per_s": score_images / score_s,
        "train_images_per_s_repeats": [batch_size * steps / t for t in times[1:]],
        "score_images_per_s_repeats": [score_images / t for t in score_times],
        "dtype_policy": keras.config.dtype_policy().name,
        "model_options": model_options or {},
    }


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    import keras

    from ganomaly_tf.reproducibility import environment

    keras.config.set_dtype_policy(args.dtype_policy)
    env = environment(deterministic=False)
    records = []
    for name in args.models:
        for channels in args.channels:
            options = {"score_iterations": args.anogan_iterations} if name == "anogan" else {}
            # AnoGAN optimises a latent code per image: a few hundred images time it well enough.
            n_score = min(args.score_images, 256) if name == "anogan" else args.score_images
            rec = measure(
                name,
                channels,
                batch_size=args.batch_size,
                score_batch_size=args.score_batch_size,
                steps=args.steps,
                score_images=n_score,
                repeats=args.repeats,
                steps_per_execution=args.steps_per_execution,
                jit_compile=args.jit_compile,
                model_options=options,
            )
            rec.update(
                threads=env.get("intra_op_threads"),
                cpu_count=env["cpu_count"],
                device=env.get("device"),
                cpu=env["cpu"],
                tensorflow=env.get("tensorflow"),
                keras=env["keras"],
                backend=env["backend"],
            )
            records.append(rec)
            print(
                f"{name:<9} c={channels}  train {rec['train_images_per_s']:8.1f} img/s"
                f"  score {rec['score_images_per_s']:9.1f} img/s",
                flush=True,
            )
    if args.output:
        atomic.write_json(args.output, records)
    if args.csv:
        import pandas as pd

        flat = [{k: v for k, v in r.items() if not isinstance(v, (list, dict))} for r in records]
        with atomic.replacing(args.csv) as tmp:
            pd.DataFrame(flat).to_csv(tmp, index=False)
    return 0


if __name__ == "__main__":
    from ganomaly_tf.cli import quiet_native_logs

    quiet_native_logs()
    sys.exit(main())
