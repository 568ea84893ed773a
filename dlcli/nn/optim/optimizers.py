"""The registered optimizers: SGD (with momentum / Nesterov), momentum, RMSprop, Adam and
AdamW. Each holds its hyperparameters and calls its update function of
:mod:`dlcli.nn.optim.functional`, where the formulas are written out."""

from dlcli import rules as r
from dlcli.nn.optim.base import Optimizer, _registered
from dlcli.nn.optim.functional import adam_update, rmsprop_update, sgd_update

__all__ = ["SGD", "Momentum", "RMSprop", "Adam", "AdamW"]


@_registered("sgd")
class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum (``torch.optim.SGD``).

    Formula: see :func:`sgd_update`. Defaults are torch's except ``lr=0.01`` (torch
    has no default). ``nesterov`` needs ``momentum > 0`` and ``dampening == 0``.
    State per parameter: ``momentum_buffer`` when ``momentum != 0``.
    """

    state_names = ("momentum_buffer",)
    RULES = {**Optimizer.RULES, "momentum": r.nonnegative_number,
             "dampening": r.number(0.0, 1.0), "nesterov": r.boolean,
             "weight_decay": r.nonnegative_number, "maximize": r.boolean}
    RELATIONS = (r.Relation(
        "nesterov", ("momentum", "dampening"),
        lambda v: f"false unless momentum > 0 and dampening = 0 (momentum is "
                  f"{v['momentum']:g}, dampening {v['dampening']:g})",
        lambda v: not v["nesterov"] or (v["momentum"] > 0 and v["dampening"] == 0)),)

    def __init__(self, *, lr=0.01, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0,
                 maximize=False):
        super().__init__(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                         weight_decay=weight_decay, maximize=maximize)

    def _update(self, param, grad, state, scratch, lr):
        sgd_update(param, grad, state, lr=lr, momentum=self.momentum, dampening=self.dampening,
                   nesterov=self.nesterov, weight_decay=self.weight_decay, maximize=self.maximize,
                   scratch=scratch)

    def _required_state(self):
        return {"momentum_buffer"} if self.momentum != 0 else set()


@_registered("momentum")
class Momentum(SGD):
    """SGD + momentum as in the notes (``ρ = 0.9``): :class:`SGD` with ``momentum=0.9``.

    ``v_t = ρ v_{t-1} + α∇J, θ -= v_t`` of the notes is this with ``lr = α`` while the
    learning rate is constant (see the module docstring for schedules).
    """

    def __init__(self, *, lr=0.01, momentum=0.9, dampening=0.0, nesterov=False, weight_decay=0.0,
                 maximize=False):
        super().__init__(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                         weight_decay=weight_decay, maximize=maximize)


@_registered("rmsprop")
class RMSprop(Optimizer):
    """RMSprop (``torch.optim.RMSprop``, same defaults). Formula: see :func:`rmsprop_update`.

    ``alpha`` must lie in [0, 1]; the notes' RMSProp uses ``eps=1e-5``.
    State per parameter: ``step``, ``square_avg``, plus ``grad_avg`` (centered) and
    ``momentum_buffer`` (momentum > 0).
    """

    state_names = ("step", "square_avg", "grad_avg", "momentum_buffer")

    RULES = {**Optimizer.RULES, "alpha": r.number(0.0, 1.0), "eps": r.nonnegative_number,
             "weight_decay": r.nonnegative_number, "momentum": r.nonnegative_number,
             "centered": r.boolean, "maximize": r.boolean}

    def __init__(self, *, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                 maximize=False):
        super().__init__(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                         momentum=momentum, centered=centered, maximize=maximize)

    def _update(self, param, grad, state, scratch, lr):
        rmsprop_update(param, grad, state, lr=lr, alpha=self.alpha, eps=self.eps,
                       weight_decay=self.weight_decay, momentum=self.momentum, centered=self.centered,
                       maximize=self.maximize, scratch=scratch)

    def _required_state(self):
        required = {"step", "square_avg"}
        if self.centered:
            required.add("grad_avg")
        if self.momentum > 0:
            required.add("momentum_buffer")
        return required


@_registered("adam")
class Adam(Optimizer):
    """Adam (``torch.optim.Adam``, same defaults). Formula: see :func:`adam_update`.

    ``betas`` is ``[beta1, beta2]`` (list or tuple), each in [0, 1); ``weight_decay`` is
    an L2 penalty added to the gradient (use ``adamw`` for decoupled decay).
    State per parameter: ``step``, ``exp_avg``, ``exp_avg_sq``, plus ``max_exp_avg_sq``
    with ``amsgrad``.
    """

    state_names = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _decoupled = False

    RULES = {**Optimizer.RULES, "betas": r.number_pair(0.0, 1.0, max_open=True),
             "eps": r.nonnegative_number, "weight_decay": r.nonnegative_number,
             "amsgrad": r.boolean, "maximize": r.boolean}

    def __init__(self, *, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 maximize=False):
        super().__init__(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize)
        self.betas = tuple(self.betas)

    def _update(self, param, grad, state, scratch, lr):
        adam_update(param, grad, state, lr=lr, beta1=self.betas[0], beta2=self.betas[1], eps=self.eps,
                    weight_decay=self.weight_decay, amsgrad=self.amsgrad, maximize=self.maximize,
                    decoupled_weight_decay=self._decoupled, scratch=scratch)

    def _required_state(self):
        required = {"step", "exp_avg", "exp_avg_sq"}
        if self.amsgrad:
            required.add("max_exp_avg_sq")
        return required


@_registered("adamw")
class AdamW(Adam):
    """AdamW (``torch.optim.AdamW``): Adam with decoupled weight decay, default 0.01.

    Formula: see :func:`adamw_update`.
    """

    _decoupled = True

    def __init__(self, *, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, amsgrad=False,
                 maximize=False):
        super().__init__(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         maximize=maximize)
