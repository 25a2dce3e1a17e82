"""One optimizer step taken by hand, as Lightning's automatic loop would take it."""

from collections.abc import Callable
from typing import Any

from lightning.pytorch import LightningModule
from torch import Tensor

from nst.numerics.losses import full_precision


def step_by_hand(
    module: LightningModule,
    optimizer: Any,
    image: Tensor,
    loss: Callable[[], Tensor],
    after_backward: Callable[[], None],
) -> Tensor:
    """One step of ``optimizer`` (the module's LightningOptimizer), taken by hand, as Lightning's
    automatic loop would take it: ``loss()`` under the precision's autocast, as many times as the
    optimizer evaluates it, each backward pass followed by ``after_backward()``, and the backward
    pass and the optimizer's arithmetic outside autocast (on ``image``'s device). Returns the loss
    at the start of the step. (``after_backward`` is called here, not from the module's
    on_after_backward hook: Lightning's call of a hook cost 0.06-0.1 ms a step; see
    nst.run.lightning_private.)"""

    def closure() -> Tensor:
        with module.trainer.precision_plugin.forward_context():
            value = loss()
        optimizer.zero_grad()
        module.manual_backward(value)
        after_backward()
        return value.detach()

    with full_precision(image):
        return optimizer.step(closure=closure)
