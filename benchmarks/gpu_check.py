"""The GPU check of the JAX path: throughput at batch 64 and 512, then the paper sweep on MNIST.

    KERAS_BACKEND=jax python -m benchmarks.gpu_check --out gpu-check      # on a GPU machine
    python -m benchmarks.gpu_check --tiny --out /tmp/gpu-check            # the same steps, tiny, on a CPU

1. Environment: versions and devices (JAX, Keras, NumPy), written first, so a failed check
   still says where it ran.
2. Training throughput of GANomaly (paper networks: 32 x 32 x 1, nz 100, 64 filters) under
   JAX: images/s of ``fit`` with the NumPy feed the sweeps use, at each ``--batch-sizes`` and
   ``--steps-per-execution`` setting, after a warm-up epoch that compiles. Scoring throughput:
   images/s of the scoring forward pass at each ``--score-batch-sizes``. Synthetic images in
   [-1, 1]: speed does not depend on their content.
3. The sweep: ``python -m benchmarks.run --backend jax --dataset mnist --all-classes --seeds 0
   --preset paper``, in a child process, into ``<out>/results`` (apart from CPU results), with
   ``--steps-per-execution`` and XLA's compilation cache shared by its runs.

Everything lands in ``<out>/gpu_check.json`` (rewritten after each measurement) and
``<out>/sweep.log``. Needs only JAX, Keras and NumPy for steps 1-2; the sweep also needs
pandas, scikit-learn and matplotlib, and the MNIST files (``--data-dir``). TensorFlow is not
used. ``--tiny`` shrinks everything (networks, batches, steps, a one-class smoke sweep) to
check the script itself on a CPU; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ganomaly_tf.cli import documented_parser

PAPER = {"image_size": 32, "channels": 1, "latent_dim": 100, "filters": 64}
TINY = {"image_size": 32, "channels": 1, "latent_dim": 8, "filters": 4}


def parser() -> argparse.ArgumentParser:
    p = documented_parser("python -m benchmarks.gpu_check", __doc__)
    p.add_argument("--out", default="gpu-check", help="folder for gpu_check.json, sweep.log, results/")
    p.add_argument("--data-dir", help="folder with the MNIST files (default: the runner's search path)")
    p.add_argument("--batch-sizes", type=int, nargs="+", help="training batch sizes (default 64 512)")
    p.add_argument("--steps-per-execution", type=int, nargs="+", help="batches per dispatch to measure (default 1 50)")
    p.add_argument("--score-batch-sizes", type=int, nargs="+", help="scoring batch sizes (default 64 512 1024)")
    p.add_argument("--seconds", type=float, default=5.0, help="least time to measure each setting for")
    p.add_argument("--sweep-steps-per-execution", type=int, default=50, help="batches per dispatch in the sweep")
    p.add_argument("--no-sweep", action="store_true", help="measure throughput only")
    p.add_argument("--sweep-args", nargs=argparse.REMAINDER, default=[], help="more options for benchmarks.run")
    p.add_argument("--tiny", action="store_true", help="tiny networks and settings: a CPU test of this script")
    return p


def _write(path: Path, report: dict) -> None:
    from ganomaly_tf import atomic

    atomic.write_text(path, json.dumps(report, indent=2, default=str) + "\n")


def _environment() -> dict:
    import jax
    import keras
    import numpy as np

    return {
        "python": sys.version.split()[0],
        "jax": jax.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "backend": keras.backend.backend(),
        "default_backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "device_kind": jax.devices()[0].device_kind,
        "tensorflow_imported": "tensorflow" in sys.modules,
    }


def _model(net: dict, steps_per_execution: int):
    from ganomaly_tf.models import GANomaly

    model = GANomaly(**net, seed=0)
    model.default_compile(steps_per_execution=steps_per_execution)
    return model


def train_throughput(net: dict, batch_size: int, steps_per_execution: int, seconds: float, pool) -> dict:
    """Images/s of ``fit`` on the NumPy feed of the sweeps, after a warm-up epoch that compiles."""
    from ganomaly_tf.backends.jax import make_dataset

    def epoch(executions: int) -> float:
        images = _tile(pool, executions * steps_per_execution * batch_size)  # whole executions only
        dataset = make_dataset(images, batch_size, shuffle=True, drop_remainder=True)
        start = time.perf_counter()
        model.fit(dataset, epochs=1, verbose=0)  # ends with the weights back on the host: synchronised
        return time.perf_counter() - start

    model = _model(net, steps_per_execution)
    warm = max(1, -(-4 // steps_per_execution))
    warmup = epoch(warm)
    estimate = epoch(warm) / warm  # seconds an execution, fit's fixed costs included: an upper bound
    executions = max(2, int(seconds / max(estimate, 1e-6)))
    took = epoch(executions)
    steps = executions * steps_per_execution
    return {
        "batch_size": batch_size,
        "steps_per_execution": steps_per_execution,
        "steps": steps,
        "seconds": round(took, 3),
        "images_per_s": round(steps * batch_size / took, 1),
        "warmup_seconds": round(warmup, 2),
    }


def score_throughput(net: dict, batch_size: int, seconds: float, pool) -> dict:
    """Images/s of the scoring forward pass (``predict``, inference BatchNorm), after a warm-up.

    ``model.score`` is this plus a fixed cost per call: it rebuilds its predict function (a
    trace, and a compile or a compilation-cache hit), measured as ``score_call_seconds``.
    """
    model = _model(net, 1)
    start = time.perf_counter()
    model.score(pool[:batch_size], batch_size=batch_size)
    score_call = time.perf_counter() - start
    model.predict(pool[:batch_size], batch_size=batch_size, verbose=0)  # compiles
    start = time.perf_counter()
    model.predict(pool[: 4 * batch_size], batch_size=batch_size, verbose=0)
    per_image = (time.perf_counter() - start) / (4 * batch_size)
    n = batch_size * max(4, int(seconds / max(per_image, 1e-9) / batch_size))
    images = _tile(pool, n)
    start = time.perf_counter()
    scores = model.predict(images, batch_size=batch_size, verbose=0)  # NumPy out: synchronised
    took = time.perf_counter() - start
    assert scores.shape == (n,), scores.shape
    return {
        "batch_size": batch_size,
        "images": n,
        "seconds": round(took, 3),
        "images_per_s": round(n / took, 1),
        "score_call_seconds": round(score_call, 2),
    }


def _tile(pool, n: int):
    import numpy as np

    reps = -(-n // len(pool))
    return np.concatenate([pool] * reps)[:n] if reps > 1 else pool[:n]


def sweep_command(args, out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "benchmarks.run", "--backend", "jax", "--dataset", "mnist"]
    if args.tiny:
        cmd += ["--classes", "0", "--seeds", "0", "--preset", "smoke", "--train-subset", "64", "--epochs", "1"]
    else:
        cmd += ["--all-classes", "--seeds", "0", "--preset", "paper"]
    cmd += ["--steps-per-execution", str(args.sweep_steps_per_execution), "--out", str(out / "results")]
    if args.data_dir:
        cmd += ["--data-dir", str(Path(args.data_dir).resolve())]
    return cmd + list(args.sweep_args)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    os.environ["KERAS_BACKEND"] = "jax"  # before Keras is imported
    if "keras" in sys.modules and sys.modules["keras"].backend.backend() != "jax":
        print("error: Keras is already running another backend in this process; run it as a script", file=sys.stderr)
        return 2
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "xla-cache"
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(cache))  # the sweep's runs share compilations
    import jax
    import numpy as np

    jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])

    net = TINY if args.tiny else PAPER
    batch_sizes = args.batch_sizes or ([8, 16] if args.tiny else [64, 512])
    spe = args.steps_per_execution or ([1, 4] if args.tiny else [1, 50])
    score_sizes = args.score_batch_sizes or ([16, 64] if args.tiny else [64, 512, 1024])
    seconds = min(args.seconds, 1.0) if args.tiny else args.seconds
    report: dict = {"tiny": args.tiny, "networks": net, "environment": _environment(), "train": [], "score": []}
    path = out / "gpu_check.json"
    _write(path, report)
    print(json.dumps(report["environment"]), flush=True)
    if report["environment"]["default_backend"] == "cpu" and not args.tiny:
        print("warning: JAX runs on the CPU here; these are not GPU numbers", file=sys.stderr, flush=True)

    rng = np.random.default_rng(0)
    size = net["image_size"]
    pool = rng.uniform(-1, 1, (max(batch_sizes + score_sizes) * 8, size, size, net["channels"])).astype(np.float32)
    for b in batch_sizes:
        for k in spe:
            if k == 1 and b != min(batch_sizes):
                continue  # one batch per dispatch only where it matters: the smallest batch
            entry = train_throughput(net, b, k, seconds, pool)
            report["train"].append(entry)
            _write(path, report)
            print(f"train  batch {b:5d}  steps/dispatch {k:3d}: {entry['images_per_s']:12,.0f} images/s", flush=True)
    for b in score_sizes:
        entry = score_throughput(net, b, seconds, pool)
        report["score"].append(entry)
        _write(path, report)
        print(f"score  batch {b:5d}: {entry['images_per_s']:12,.0f} images/s", flush=True)

    if args.no_sweep:
        return 0
    cmd = sweep_command(args, out)
    print("sweep:", " ".join(cmd), flush=True)
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    start = time.perf_counter()
    with open(out / "sweep.log", "w") as log:
        status = subprocess.call(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    report["sweep"] = {"command": cmd, "exit_status": status, "seconds": round(time.perf_counter() - start, 1)}
    summary = next((out / "results").glob("mnist/*/*/summary.csv"), None)
    if summary is not None:
        report["sweep"]["summary_csv"] = str(summary)
        report["sweep"]["summary"] = summary.read_text()
    _write(path, report)
    print((out / "sweep.log").read_text()[-3000:], flush=True)
    print(f"sweep exit status {status}; report: {path}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
