"""Names of the suite's choices, defined once (no Keras or TensorFlow import here)."""

#: Registered models, in the suite's usual order (``models.registry`` maps them to classes).
MODEL_NAMES = ("ganomaly", "ae", "anogan", "egbad", "vae")
#: How tables and plots name each model, in the order they list them (the paper's comparators first).
MODEL_TITLES = {"ganomaly": "GANomaly", "anogan": "AnoGAN", "egbad": "EGBAD", "vae": "VAE", "ae": "AE"}
#: Seeds a sweep runs unless told otherwise (the paper averages over several seeds).
DEFAULT_SEEDS = (0, 1, 2)
#: How tables and plots name each dataset.
DATASET_TITLES = {"mnist": "MNIST", "cifar10": "CIFAR-10"}
#: BatchNorm at test time: ``inference`` (the moving statistics; the default), ``batch`` (each test
#: batch's own statistics, as the official code scored) or ``per-image`` (each image's own statistics,
#: a test batch of one, as the official code's authors advised). See docs/evaluation.md.
BN_MODES = ("inference", "batch", "per-image")
#: ``tf.distribute`` strategies (on JAX, default and mirrored both mean every local device).
STRATEGIES = ("default", "mirrored", "multi-worker")
#: Keras dtype policies a run may use; float32 is the reference.
DTYPE_POLICIES = ("float32", "mixed_bfloat16")
#: Keras backends the suite runs on.
BACKENDS = ("tensorflow", "jax")
