"""nst: Gatys-style neural style transfer as a PyTorch Lightning project.

import nst
picture = nst.stylize("photo.jpg", "painting.jpg", size=512, steps=500)
result = nst.fit("configs/starry.yaml", {"data.size": 256})
"""

from nst.api import Progress, fit, stylize
from nst.data import StyleTransferData
from nst.errors import NSTError
from nst.module import StyleTransfer
from nst.run import Result, Run
from nst.stopping import RunInterrupted

__all__ = [
    "NSTError",
    "Progress",
    "Result",
    "Run",
    "RunInterrupted",
    "StyleTransfer",
    "StyleTransferData",
    "fit",
    "stylize",
]
