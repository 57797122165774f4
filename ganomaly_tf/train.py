"""Train and evaluate one model on one split, from the command line.

    python -m ganomaly_tf.train --dataset mnist --abnormal-class 0 --seed 0 \\
        --epochs 1 --train-subset 6000 --output run.json
"""

from __future__ import annotations

import argparse
import json
import sys

from . import atomic
from .cli import (
    DATASET_HELP,
    ArgumentParser,
    add_debug_flag,
    add_run_options,
    check_output,
    fail,
    run_cli,
    run_settings,
)
from .config import RunConfig
from .constants import MODEL_NAMES
from .data import PROTOCOLS
from .data.sources import fixed_split, resolve_path

#: Rough training and scoring images/s of each model on a 2-core CPU (one day's measurements of
#: ``benchmarks.throughput``; these machines drift 2-3x): only for the time estimate printed first.
ROUGH_SPEED = {"ganomaly": (250, 1500), "ae": (500, 2000), "vae": (500, 1500), "egbad": (250, 800), "anogan": (250, 12)}

_EXAMPLES = """examples:
  # one epoch on 6,000 training images, abnormal digit 0, honest evaluation
  python -m ganomaly_tf.train --dataset mnist --abnormal-class 0 --epochs 1 --train-subset 6000 --output run.json
  # the paper's schedule on a CIFAR-10 class, scored as the official code did
  python -m ganomaly_tf.train --dataset cifar10 --abnormal-class cat --bn-mode batch --output cat.json
"""


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m ganomaly_tf.train",
        description=__doc__.splitlines()[0],
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d = RunConfig()
    p.add_argument("--dataset", default=d.dataset, metavar="DATASET", help=f"{DATASET_HELP} (default mnist)")
    p.add_argument("--abnormal-class", default="0", help="index or name of the abnormal class (default 0)")
    p.add_argument("--seed", type=int, default=d.seed, help="split, initialisation and data-order seed")
    p.add_argument(
        "--protocol", choices=PROTOCOLS, help="split protocol (default: paper; fixed for a folder with its own split)"
    )
    p.add_argument("--model", choices=MODEL_NAMES, default=d.model, help="the model (default ganomaly)")
    p.add_argument("--lr", type=float, default=d.learning_rate, help="Adam learning rate (paper: 2e-4)")
    p.add_argument("--w-adv", type=float, default=1.0, help="GANomaly adversarial weight (paper: 1)")
    p.add_argument("--w-con", type=float, default=50.0, help="GANomaly contextual weight (paper: 50)")
    p.add_argument("--w-enc", type=float, default=1.0, help="GANomaly encoder weight (paper: 1)")
    add_run_options(p, TRAIN_OPTIONS, defaults=d)
    p.add_argument("--output", help="write the run record (JSON) here")
    p.add_argument("--scores", help="write scores, labels and origins (.npz) here")
    p.add_argument(
        "--save-model",
        metavar="PATH.keras",
        help="save the trained model here, and record a threshold chosen without test labels (the 95th percentile "
        "of held-out normals' scores) in --output, for python -m ganomaly_tf.score",
    )
    p.add_argument("-v", "--verbose", action="count", default=0)
    add_debug_flag(p)
    return p


#: The :data:`~ganomaly_tf.cli.RUN_OPTIONS` this tool offers.
TRAIN_OPTIONS = [
    "--epochs",
    "--batch-size",
    "--train-subset",
    "--test-subset",
    "--image-size",
    "--bn-mode",
    "--val-fraction",
    "--strategy",
    "--steps-per-execution",
    "--dtype-policy",
    "--data-dir",
    "--skip-unreadable",
]


def config_from_args(args: argparse.Namespace) -> RunConfig:
    compile_options = {}
    if args.model == "ganomaly":
        compile_options = {"w_adv": args.w_adv, "w_con": args.w_con, "w_enc": args.w_enc}
    dataset = resolve_path(args.dataset)
    return RunConfig(
        dataset=dataset,
        abnormal_class=args.abnormal_class,
        seed=args.seed,
        protocol=args.protocol or ("fixed" if fixed_split(dataset) else "paper"),
        model=args.model,
        learning_rate=args.lr,
        compile_options=compile_options,
        **run_settings(args, TRAIN_OPTIONS),
    )


def plan(config: RunConfig) -> str:
    """What the run is about to do, with a rough duration: printed before anything starts."""
    from .experiment import prepare_split  # the run's own split: subsets and held-out images count as in the run

    _, identity = prepare_split(config)
    n_train, n_test = identity["n_train"], identity["n_test_normal"] + identity["n_test_abnormal"]
    train_speed, score_speed = ROUGH_SPEED.get(config.model, (250, 1000))
    evaluations = len(config.evaluated_epochs())
    seconds = config.epochs * n_train / train_speed + evaluations * n_test / score_speed
    return (
        f"{config.model} on {config.dataset}, class {config.abnormal_class}, seed {config.seed}, "
        f"{config.protocol} split: {config.epochs} epoch(s) x {n_train:,} training images (batch {config.batch_size}), "
        f"about {n_test:,} test images scored {evaluations} time(s); roughly {max(1, round(seconds / 60))} min on a "
        "2-core CPU" + (f"\ndataset {identity['source']}" if "source" in identity else "")
    )


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    config = run_cli(p, args, lambda: config_from_args(args))
    if args.save_model and not args.save_model.endswith(".keras"):  # Keras would refuse it after training
        fail(p, f"--save-model {args.save_model}: Keras saves models to .keras files; give a path ending in .keras")

    def check_outputs() -> int:  # before training, which takes minutes to hours
        for option, path, example in [
            ("--output", args.output, "record.json"),
            ("--scores", args.scores, "scores.npz"),
            ("--save-model", args.save_model, "model.keras"),
        ]:
            check_output(path, option, example=example)
        return 0

    run_cli(p, args, check_outputs)
    print(run_cli(p, args, lambda: plan(config)), flush=True)
    from .experiment import THRESHOLD_PERCENTILE, run

    try:
        result = run(
            config,
            verbose=2 if args.verbose else 0,
            threshold_percentile=THRESHOLD_PERCENTILE if args.save_model else None,
        )
    except KeyboardInterrupt:
        fail(p, "interrupted; nothing was written")
    rec = result.record
    if args.output:
        atomic.write_json(args.output, {**rec.to_json(), "history": rec.history})
    if args.scores:
        import numpy as np

        np.savez_compressed(args.scores, scores=result.scores, labels=result.labels, origins=result.origins)
    if args.save_model:
        result.model.save(args.save_model)
    for h in rec.history:
        auc = f"auc {h['auc']:.4f}  auc_pr {h['auc_pr']:.4f}" if "auc" in h else "not evaluated"
        print(f"epoch {h['epoch']:>3}  {auc}  {h['train_seconds']:.1f} s")
    keys = ("auc_last", "auc_best", "best_epoch", "train_images_per_s", "score_images_per_s")
    summary = {k: getattr(rec, k) for k in keys}
    print(json.dumps(summary))
    if rec.threshold is not None:
        print(f"threshold: {rec.threshold['rule']}")
        print(
            f"score new images: python -m ganomaly_tf.score --model {args.save_model} "
            f"--threshold {rec.threshold['value']!r} IMAGES_OR_FOLDER..."
        )
    return 0


if __name__ == "__main__":
    from .cli import quiet_native_logs

    quiet_native_logs()
    sys.exit(main())
