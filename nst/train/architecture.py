"""The image transformation network of Johnson, Alahi & Fei-Fei (2016), *Perceptual Losses for
Real-Time Style Transfer*: a photo in, the painted photo out, in one pass.

Shape (their supplementary material, with ``width`` w = 32 and ``blocks`` = 5)::

    9×9 conv, w            reflection padding, instance norm, ReLU (every conv but the last)
    3×3 conv stride 2, 2w  ┐ two downsampling stages
    3×3 conv stride 2, 4w  ┘
    residual blocks, 4w    two 3×3 convs each, the second without ReLU, plus the input
    ×2 nearest, 3×3, 2w    ┐ two upsampling stages, upsample then convolve (Odena et al. 2016):
    ×2 nearest, 3×3, w     ┘ transposed convolutions leave checkerboard patterns
    9×9 conv, 3            then the paper's scaled tanh, here onto [0, 1]

Instance normalisation rather than batch normalisation (Ulyanov et al. 2016): each picture is
normalised on its own, so a batch's pictures do not mix and a picture painted alone comes out
as it would in any batch. Fully convolutional: any size; sides that are not a multiple of 4 are
padded by reflection and cropped back, so that the upsampling meets the downsampling exactly.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _Conv(nn.Sequential):
    """Reflection padding, convolution, and (unless last) instance norm and ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, relu: bool = True) -> None:
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(kernel // 2),
            # No bias: the norm after it subtracts each channel's mean, bias and all. Its gradient
            # would be rounding noise, which Adam scales up into full steps of nothing.
            nn.Conv2d(cin, cout, kernel, stride, bias=False),
            nn.InstanceNorm2d(cout, affine=True),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_Conv(channels, channels, 3), _Conv(channels, channels, 3, relu=False))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class _Up(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Upsample(scale_factor=2.0, mode="nearest"), _Conv(cin, cout, 3))


class TransformNet(nn.Module):
    """Johnson et al.'s network; ``width`` is the first stage's channels (the paper's 32; the
    deeper stages have 2× and 4× as many), ``blocks`` the residual blocks (the paper's 5)."""

    def __init__(self, width: int = 32, blocks: int = 5) -> None:
        super().__init__()
        w = width
        self.down = nn.Sequential(_Conv(3, w, 9), _Conv(w, 2 * w, 3, 2), _Conv(2 * w, 4 * w, 3, 2))
        self.residual = nn.Sequential(*(_Residual(4 * w) for _ in range(blocks)))
        self.up = nn.Sequential(_Up(4 * w, 2 * w), _Up(2 * w, w))
        self.out = nn.Sequential(nn.ReflectionPad2d(4), nn.Conv2d(w, 3, 9))

    def forward(self, photo: Tensor) -> Tensor:
        """[N, 3, H, W] RGB in [0, 1] -> the painting, [N, 3, H, W] in [0, 1]."""
        h, w = photo.shape[-2], photo.shape[-1]
        pad_h, pad_w = (4 - h % 4) % 4, (4 - w % 4) % 4  # two stride-2 stages
        # Padded always, by 0 where nothing is needed: an exported graph has no branch on sizes.
        x = F.pad(photo, [0, pad_w, 0, pad_h], mode="reflect")
        x = self.out(self.up(self.residual(self.down(x))))
        # The paper's scaled tanh, onto [0, 1]: the losses see an image in range from the start.
        return (torch.tanh(x[..., :h, :w]) + 1) / 2
