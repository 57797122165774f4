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


#: Run settings that change results, as they appear in the name of a sweep folder whose runs
#: override a preset: ``quick+epochs15`` holds quick-preset runs trained for 15 epochs. Runs of
#: different settings never share a folder, so a table never averages two configurations.
VARIANT_TAGS: dict[str, str] = {
    "epochs": "epochs{}",
    "batch_size": "batch{}",
    "train_subset": "train{}",
    "image_size": "size{}",
    "bn_mode": "bn-{}",
    "dtype_policy": "{}",
    "deterministic": "deterministic-{}",
    "strategy": "{}",
    "threads": "threads{}",
    "val_fraction": "val{}",
    "steps_per_execution": "steps{}",
    "skip_unreadable": "skip-unreadable",
    "backend": "{}",
}
_VARIANT_WORDS = {
    "epochs": "{} epochs",
    "batch": "batch {}",
    "train": "{} training images",
    "size": "images resized to {0} x {0}",
    "bn-": "BatchNorm at test time: {}",
    "threads": "{} thread(s) a run",
    "val": "{} of the training normals held out",
    "steps": "{} batches a dispatch",
    "skip-unreadable": "unreadable image files left out",
}


def variant_name(preset_name: str, settings: dict[str, Any], defaults: dict[str, Any]) -> str:
    """The sweep folder name for ``preset_name`` with ``settings`` (RunConfig fields and ``backend``).

    A setting joins the name when it differs from the preset's value, else from ``defaults``.
    """
    base = preset(preset_name)
    tags = []
    for key in VARIANT_TAGS:
        value = settings.get(key)
        if value is None:
            continue
        if value != base.get(key, defaults.get(key)):
            tags.append(variant_tag(key, value))
    return "+".join([preset_name, *tags])


def variant_tag(key: str, value: Any) -> str:
    """The part of a sweep folder's name that says ``key`` was set to ``value`` (see VARIANT_TAGS)."""
    text = {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value
    return VARIANT_TAGS[key].format("all" if key == "train_subset" and value == 0 else text)


def describe(preset_name: str, *, n_train: int | None = None, n_test: int | None = None) -> str:
    """The schedule of a preset (or a variant folder name) in words, e.g. "2 epochs on 12,000 training images".

    ``n_train`` / ``n_test``: the most training / test images any run of the sweep had. A subset at
    least as large as the data leaves it whole, and the words then say so instead of the preset's
    subset size (a small folder under the ``smoke`` preset trains on every image it has).
    """
    name, *tags = preset_name.split("+")
    if name not in PRESETS:
        return f"preset {preset_name}"
    if tags:
        words = []
        for tag in tags:
            prefix = next(
                (p for p in _VARIANT_WORDS if tag.startswith(p) and (tag != p or "{" not in _VARIANT_WORDS[p])), None
            )
            words.append(_VARIANT_WORDS[prefix].format(tag[len(prefix) :]) if prefix else tag)
        return f"{describe(name, n_train=n_train, n_test=n_test)}, but {', '.join(words)}"
    settings = PRESETS[name]
    epochs = settings["epochs"]
    train, test = settings.get("train_subset"), settings.get("test_subset")
    if train and n_train is not None and n_train < train:
        train = None
    # The test subset is stratified, so its size may miss the requested one by a rounding or two.
    if test and n_test is not None and n_test < test - 2:
        test = None
    images = f"{train:,} training images" if train else "every training image"
    text = f"{epochs} epoch{'s' if epochs != 1 else ''} on {images}"
    if test:
        text += f", {test:,} test images"
    if settings.get("filters"):
        text += f", {settings['filters']}-filter networks"
    return text


def model_options(preset_name: str, model: str) -> dict[str, Any]:
    return dict(MODEL_OPTIONS.get(preset_name, {}).get(model, {}))


def model_settings(preset_name: str, model: str) -> dict[str, Any]:
    """The preset's RunConfig settings for ``model``: its own, then the model's (see MODEL_SETTINGS)."""
    return {**preset(preset_name), **MODEL_SETTINGS.get(preset_name, {}).get(model, {})}
