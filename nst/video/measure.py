"""How steady a stylised video is: the warping error of Lai et al. (2018) and Ruder et al.'s
evaluation, each output frame against the one before moved by the flow of the input frames,
where that flow can be trusted."""

from collections.abc import Sequence

import numpy as np

from nst.video.flow import flow_between, grey, reliable, sample


def warping_error(
    inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray], preset: str = "medium"
) -> float:
    """The mean over frames t ≥ 1 of the masked mean squared difference between output frame t
    and output frame t-1 warped by the flow between input frames t and t-1 (pixels in [0, 1];
    frames [H, W, 3] uint8, inputs at the outputs' size)."""
    errors = []
    for t in range(1, len(outputs)):
        later, earlier = grey(inputs[t]), grey(inputs[t - 1])
        backward = flow_between(later, earlier, preset)
        mask = reliable(flow_between(earlier, later, preset), backward)
        warped = sample(outputs[t - 1].astype(np.float32) / 255, backward)
        errors.append(float((mask[..., None] * (outputs[t] / 255 - warped) ** 2).mean()))
    return float(np.mean(errors)) if errors else 0.0
