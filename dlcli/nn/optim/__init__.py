"""Optimizers (registered by name when this package is imported) and learning-rate schedules.

``functional``: the update formulas as pure functions; ``base``: the Optimizer class (state,
packed steps, checkpoints); ``optimizers``: the registered classes; ``schedules``: learning
rate as a function of the epoch."""

from dlcli.nn.optim.base import Optimizer
from dlcli.nn.optim.functional import adam_update, adamw_update, rmsprop_update, sgd_update
from dlcli.nn.optim.optimizers import SGD, Adam, AdamW, Momentum, RMSprop

__all__ = ["Optimizer", "SGD", "Momentum", "RMSprop", "Adam", "AdamW",
           "sgd_update", "rmsprop_update", "adam_update", "adamw_update"]
