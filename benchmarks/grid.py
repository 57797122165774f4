"""A sweep's grid: abnormal classes -> seeds -> models, each a :class:`RunConfig`, in a stable order.

Also its shards (every n-th run, so machines split a sweep without talking to each other) and the
check, before any run starts, that every run of the grid fits its data.
"""

from __future__ import annotations

from ganomaly_tf.config import RunConfig
from ganomaly_tf.constants import MODEL_NAMES
from ganomaly_tf.data import class_names
from ganomaly_tf.data.datasets import resolve_in
from ganomaly_tf.errors import ConfigError

from . import presets


def parse_shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected K/N, e.g. 0/4") from None
    if n < 1 or not 0 <= k < n:
        raise ValueError(f"--shard {text!r}: need 0 <= K < N")
    return k, n


def build_grid(
    dataset: str,
    classes: list[int | str] | None,
    seeds: list[int],
    models: list[str],
    *,
    protocol: str = "paper",
    preset: str = "quick",
    overrides: dict | None = None,
    data_dir: str | None = None,
) -> list[RunConfig]:
    """All runs of a sweep, classes -> seeds -> models, in a stable order.

    ``classes`` None: every class (for a fixed-split dataset, every category: one for the official
    image-folder layout). Classes are listed from the dataset itself (``data_dir`` where it is read).
    """
    unknown = [m for m in models if m not in MODEL_NAMES]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {', '.join(MODEL_NAMES)}")
    RunConfig(dataset=dataset)  # an unknown dataset name is a ConfigError before any file is read
    names = class_names(dataset, data_dir)
    class_ids = list(range(len(names))) if classes is None else [resolve_in(names, c, dataset) for c in classes]
    presets.preset(preset)  # an unknown preset is an error before anything else
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    grid = []
    for k in dict.fromkeys(class_ids):
        for seed in dict.fromkeys(seeds):
            for model in dict.fromkeys(models):
                settings = {**presets.model_settings(preset, model), **overrides}
                if settings.get("train_subset") == 0:
                    settings["train_subset"] = None
                grid.append(
                    RunConfig(
                        dataset=dataset,
                        abnormal_class=k,
                        seed=seed,
                        protocol=protocol,
                        model=model,
                        model_options=presets.model_options(preset, model),
                        **settings,
                    )
                )
    return grid


def shard(grid: list, k: int, n: int) -> list:
    """Shard k of n: every n-th run of the stable grid order, so shards cover it exactly once."""
    return grid[k::n]


def check_grid_fits(grid: list[RunConfig], dataset) -> None:
    """Every run's split gives at least one batch of training images, checked for the whole grid at once."""
    problems = []
    for config in grid:
        try:
            config.check_fits(dataset)
        except ConfigError as e:
            problems.append(str(e))
    if problems:
        more = f" (and {len(problems) - 1} more run(s) alike)" if len(problems) > 1 else ""
        raise ConfigError(problems[0] + more)
