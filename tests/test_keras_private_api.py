"""The private parts of Keras's JAX trainer that ``ganomaly_tf/backends/jax.py`` relies on.

``backends.jax.TrainerHooks`` overrides three trainer methods and writes the trainer's state
attributes, because Keras fills the optimiser slot of its JAX state from ``model.optimizer``
alone (GANomaly, AnoGAN and EGBAD have two optimisers). None of that is public API: these tests
fail, naming the hook, as soon as a Keras release renames one of them or changes what it is
called with, rather than letting fit train with stale optimiser state. They inspect Keras's
source and signatures; they need JAX installed, not the JAX backend.
"""

from __future__ import annotations

import inspect

import keras
import pytest

#: the Keras releases these hooks were checked against (the JAX tests of tests/test_jax.py pass)
TESTED_KERAS = ">=3.15,<3.16"


def _fail(hook: str, problem: str) -> str:
    return (
        f"Keras {keras.__version__}: {hook} {problem}. ganomaly_tf/backends/jax.py (TrainerHooks) relies on it; "
        f"the hooks are tested with keras{TESTED_KERAS}. Adapt TrainerHooks to this Keras or pin keras{TESTED_KERAS}."
    )


@pytest.fixture(scope="module")
def trainer():
    pytest.importorskip("jax")
    from keras.src.backend.jax.trainer import JAXTrainer

    return JAXTrainer


def _parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def _source(function) -> str:
    return inspect.getsource(function)


def test_get_jax_state_signature(trainer):
    hook = "JAXTrainer._get_jax_state"
    assert hasattr(trainer, "_get_jax_state"), _fail(hook, "is gone")
    want = [
        "self",
        "trainable_variables",
        "non_trainable_variables",
        "optimizer_variables",
        "metrics_variables",
        "purge_model_variables",
    ]
    # TrainerHooks passes these positionally, in this order, and inserts the optimiser slot
    # after the trainable and non-trainable lists.
    assert _parameters(trainer._get_jax_state) == want, _fail(hook, f"takes {_parameters(trainer._get_jax_state)}")
    source = _source(trainer._get_jax_state)
    order = [source.find(f"self.{name}") for name in ("trainable_variables", "non_trainable_variables")]
    order.append(source.find("self.optimizer.variables"))
    order.append(source.find("self.metrics_variables"))
    assert -1 not in order and order == sorted(order), _fail(
        hook, "no longer builds (trainable, non-trainable, optimizer, metrics)"
    )


def test_jax_state_sync_and_state_attributes(trainer):
    hook = "JAXTrainer.jax_state_sync"
    assert _parameters(trainer.jax_state_sync) == ["self"], _fail(hook, "changed its signature")
    sync = _source(trainer.jax_state_sync)
    for needle in ("self._jax_state", "self._jax_state_synced", '"optimizer_variables"', "self.optimizer.variables"):
        assert needle in sync, _fail(hook, f"no longer reads {needle}")
    fit = _source(trainer.fit)
    for needle in ("self._jax_state_synced", "self._jax_state = {", '"optimizer_variables": optimizer_variables'):
        assert needle in fit, _fail("JAXTrainer.fit's state between sync points", f"no longer holds {needle}")


def test_state_sharding_spec(trainer):
    hook = "JAXTrainer._get_state_sharding_spec"
    assert hasattr(trainer, "_get_state_sharding_spec"), _fail(hook, "is gone")
    assert _parameters(trainer._get_state_sharding_spec) == ["self"], _fail(hook, "changed its signature")
    source = _source(trainer._get_state_sharding_spec)
    assert "optimizer_shardings" in source and "metrics_shardings" in source, _fail(hook, "no longer returns 4 lists")


def test_train_step_state_layout(trainer):
    hook = "JAXTrainer.train_step(state, data)"
    assert _parameters(trainer.train_step) == ["self", "state", "data"], _fail(hook, "changed its signature")
    source = _source(trainer.train_step)
    layout = ["trainable_variables", "non_trainable_variables", "optimizer_variables", "metrics_variables"]
    positions = [source.find(name) for name in layout]
    assert -1 not in positions and positions == sorted(positions), _fail(hook, "has another state layout")
    assert _parameters(trainer.make_train_function) == ["self", "force"], _fail(
        "JAXTrainer.make_train_function", "changed its signature"
    )


def test_variable_value_slot(trainer):
    hook = "KerasVariable._value"
    from keras.src.backend.common.variables import Variable

    assert "self._value" in _source(Variable.value.fget), _fail(hook, "is no longer where a variable keeps its value")
    purge = _source(trainer._purge_model_variables)
    assert "v._value = None" in purge, _fail(hook, "= None is no longer how Keras purges a variable's copy")
