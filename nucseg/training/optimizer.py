"""The optimiser of every net: SGD with momentum and decoupled weight decay, a learning rate
that warms up linearly and then follows a cosine (or stays constant) over exactly the steps
trained, and gradients clipped to a global norm.

Warm-up and clipping are there because of what PangNet did on TNBC without them (lr 0.05,
momentum 0.9, no normalisation layer): the loss fell for two epochs, then one large step drove
every ReLU of its last layer below zero for all inputs; from then on the net gave 0.45
everywhere, the loss stayed at ln 2 and 4 of 11 folds scored F1 0.000. Either one alone kept
those folds learning (F1 0.75-0.80 on patients 01 and 03); both are on by default.
"""

from __future__ import annotations

import keras

from nucseg.config import Config
from nucseg.postprocess.kinds import kind_of


@keras.saving.register_keras_serializable(package="nucseg")
class WarmupCosine(keras.optimizers.schedules.CosineDecay):
    """Keras's CosineDecay, its warm-up and its cosine picked by a `where` instead of a `cond`:
    the same rates (the same two functions of the step), cheaper to trace. Keras's decoupled
    weight decay asks the schedule once per variable while the train step is traced, and each
    `cond` traces two sub-graphs: in a small test fold, 5.5 of the 20 s spent tracing `fit`."""

    def __call__(self, step):
        from keras import ops

        if self.warmup_target is None:
            return super().__call__(step)
        start = ops.convert_to_tensor(self.initial_learning_rate)
        dtype = start.dtype
        target, warmup = ops.cast(self.warmup_target, dtype), ops.cast(self.warmup_steps, dtype)
        decay_steps = ops.cast(self.decay_steps, dtype)
        step = ops.minimum(ops.cast(step, dtype), decay_steps + warmup)
        warming = self._warmup_function(step, warmup, target, start)
        decaying = self._decay_function(step - warmup, decay_steps, target, dtype)
        return ops.where(step < warmup, warming, decaying)


def schedule_of(config: Config, total_steps: int):
    """The learning rate over exactly `total_steps`: a linear warm-up, then cosine or constant."""
    warmup = int(config.warmup_fraction * total_steps)
    if config.lr_schedule == "cosine":
        return WarmupCosine(
            0.0 if warmup else config.lr,
            decay_steps=total_steps - warmup,
            alpha=0.01,
            warmup_target=config.lr if warmup else None,
            warmup_steps=warmup,
        )
    if warmup:  # a cosine with alpha 1 is constant after its warm-up
        return WarmupCosine(0.0, decay_steps=1, alpha=1.0, warmup_target=config.lr, warmup_steps=warmup)
    return config.lr


def xla_for_training() -> bool | str:
    """XLA slows training on TensorFlow's CPU build (measured at batch 4 of 256x256: PangNet
    0.059 against 0.031 s/step, quick U-Net 0.23 against 0.16); elsewhere (JAX, GPUs) Keras's
    "auto" compiles the train step with XLA, as it should."""
    if keras.backend.backend() == "tensorflow":
        from nucseg.hardware import tensorflow_sees_gpu

        return tensorflow_sees_gpu()
    return "auto"


def compile_model(model: keras.Model, config: Config, total_steps: int) -> keras.Model:
    optimizer = keras.optimizers.SGD(
        schedule_of(config, total_steps),
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        global_clipnorm=config.clip_norm or None,
    )
    model.compile(optimizer=optimizer, loss=kind_of(config).loss, jit_compile=xla_for_training())
    # Keras's TensorFlow trainer, with no distribution strategy, builds the optimiser (its momenta)
    # inside the first trace of the train step, and a tf.function that creates variables as it is
    # traced is traced again: every fold traced its step twice (4 to 8 s on 2 cores). Built here,
    # with the same zeros, the step is traced once.
    model.optimizer.build(model.trainable_variables)
    return model
