"""Named schedules for sweeps. A preset fills a RunConfig; command-line overrides win.

- ``paper``: the paper's schedule: 15 epochs, batch 64, all training images, whole test set.
- ``quick``: MNIST, all ten classes, one seed, GANomaly in about 35-45 minutes on a 2-core
  CPU: 2 epochs on a seeded subset of 12,000 training images (of about 50,000), whole
  test set, full-size networks. AnoGAN scores with 50 latent iterations instead of 500.
- ``ci``: the CI regression: 1 epoch on 6,000 training images, a stratified 3,000-image
  test subset, full-size networks; about a minute a class on 2 cores. (With fewer images
  the AUC sits near or below one half, where a broken model would not show as a drop.)
- ``smoke``: seconds per run, for tests: 1 epoch on 256 images, 600 test images, networks
  with 8 base filters and a 16-dimensional latent code. Its records say all of this.
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"epochs": 15, "batch_size": 64},
    "quick": {"epochs": 2, "batch_size": 64, "train_subset": 12000},
    "ci": {"epochs": 1, "batch_size": 64, "train_subset": 6000, "test_subset": 3000},
    "smoke": {
        "epochs": 1,
        "batch_size": 32,
        "train_subset": 256,
        "test_subset": 600,
        "filters": 8,
        "latent_dim": 16,
    },
}

# Per-model run settings by preset (RunConfig fields), applied over the preset's own.
# AnoGAN's per-image latent search makes one evaluation of a whole test set cost about half an
# hour on 2 cores at 50 iterations: under ``quick`` it is evaluated after the last epoch only,
# on a stratified test subset whose abnormal images are the same for every seed (a fixed
# subset seed). Its records and the report's tables say so.
ANOGAN_QUICK_TEST_SUBSET = 4000
MODEL_SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {"anogan": {"eval_every": 0, "test_subset": ANOGAN_QUICK_TEST_SUBSET, "test_subset_seed": 0}},
}

# Per-model constructor options by preset (the paper's value under ``paper``).
MODEL_OPTIONS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {"anogan": {"score_iterations": 500}},
    "quick": {"anogan": {"score_iterations": 50}},
    "ci": {"anogan": {"score_iterations": 20}},
    "smoke": {"anogan": {"score_iterations": 5}},
}

# Classes the CI regression checks when none are given.
CI_CLASSES = (0, 2)


def preset(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return dict(PRESETS[name])


def describe(preset_name: str) -> str:
    """The schedule of a preset in words, e.g. "2 epochs on 12,000 training images"."""
    if preset_name not in PRESETS:
        return f"preset {preset_name}"
    settings = PRESETS[preset_name]
    epochs = settings["epochs"]
    images = f"{settings['train_subset']:,} training images" if settings.get("train_subset") else "every training image"
    text = f"{epochs} epoch{'s' if epochs != 1 else ''} on {images}"
    if settings.get("test_subset"):
        text += f", {settings['test_subset']:,} test images"
    if settings.get("filters"):
        text += f", {settings['filters']}-filter networks"
    return text


def model_options(preset_name: str, model: str) -> dict[str, Any]:
    return dict(MODEL_OPTIONS.get(preset_name, {}).get(model, {}))


def model_settings(preset_name: str, model: str) -> dict[str, Any]:
    """The preset's RunConfig settings for ``model``: its own, then the model's (see MODEL_SETTINGS)."""
    return {**preset(preset_name), **MODEL_SETTINGS.get(preset_name, {}).get(model, {})}
