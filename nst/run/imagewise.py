"""One optimizer per picture, behind the one optimizer Lightning steps.

Pictures optimised together (nst.run.paintings) must each come out as they would alone. Adam is
elementwise, so one Adam over all of them would do; L-BFGS is not: one L-BFGS over several
pictures would share one curvature history and one step size between them, coupling pictures
that have nothing to do with each other. Here every picture keeps the optimizer a run of its
own would have made, with its own state, and the batch's loss is evaluated once per step.
"""

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer


class ImageWise(Optimizer):
    """Steps ``optimizers`` (one per picture) together: one evaluation of the closure (one
    forward and backward for every picture), then each optimizer's step from the gradients it
    left. Each optimizer evaluates its closure once per step, as nst configures them (L-BFGS
    with max_iter=1), so each takes exactly the step it would have taken alone."""

    def __init__(self, optimizers: list[Optimizer]) -> None:
        # Not Optimizer.__init__: the parameter groups and the state are the pictures' own
        # optimizers', shared rather than copied, so that what Lightning sets (a learning rate)
        # or moves (the state, to the device) reaches them.
        self.optimizers = optimizers
        self.defaults: dict[str, Any] = {}

    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return [group for optimizer in self.optimizers for group in optimizer.param_groups]

    @property
    def state(self) -> dict[Tensor, Any]:  # type: ignore[override]
        return _States(self.optimizers)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none)

    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:  # type: ignore[override]
        if closure is None:
            raise ValueError("ImageWise steps with a closure: the batch's loss is evaluated once for all")
        with torch.enable_grad():
            loss = closure()
        for optimizer in self.optimizers:
            optimizer.step(lambda: loss)  # the gradients are in place already
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {"pictures": [optimizer.state_dict() for optimizer in self.optimizers]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        states = state_dict["pictures"]
        if len(states) != len(self.optimizers):
            raise ValueError(f"a state of {len(states)} pictures for {len(self.optimizers)}")
        for optimizer, state in zip(self.optimizers, states, strict=True):
            optimizer.load_state_dict(state)

    def __repr__(self) -> str:
        return f"ImageWise({len(self.optimizers)} × {type(self.optimizers[0]).__name__})"


class _States(dict):
    """Every picture's optimizer state by parameter; writing a parameter's entry writes it in
    the optimizer that owns it (Lightning replaces entries when it moves them to a device)."""

    def __init__(self, optimizers: list[Optimizer]) -> None:
        super().__init__((p, s) for optimizer in optimizers for p, s in optimizer.state.items())
        self._owners = {p: optimizer for optimizer in optimizers for p in optimizer.state}

    def __setitem__(self, parameter: Tensor, value: Any) -> None:
        super().__setitem__(parameter, value)
        self._owners[parameter].state[parameter] = value
