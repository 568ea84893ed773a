"""Optimizers (registered by name) and learning-rate schedules."""

from dlcli.nn.optim.optimizers import (SGD, Adam, AdamW, Momentum, Optimizer, RMSprop, adam_update,
                                       adamw_update, rmsprop_update, sgd_update)

__all__ = ["Optimizer", "SGD", "Momentum", "RMSprop", "Adam", "AdamW",
           "sgd_update", "rmsprop_update", "adam_update", "adamw_update"]
