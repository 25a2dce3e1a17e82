"""nst: Gatys-style neural style transfer as a PyTorch Lightning project.

import nst
picture = nst.stylize("photo.jpg", "painting.jpg", size=512, steps=500)
result = nst.fit("configs/starry.yaml", {"data.size": 256})
video = nst.stylize_video("clip.mp4", "painting.jpg", size=256)
network = nst.Network.load("logs/train/version_0/network.pt")   # nst train's; then network.paint(photo)
"""

import importlib
from typing import TYPE_CHECKING, Any

# Imported when first used: the command line installs its Ctrl-C handling before torch and
# Lightning take seconds to import.
_EXPORTS = {
    "NSTError": "nst.errors",
    "Network": "nst.train.network",
    "Picture": "nst.run.engine",
    "Progress": "nst.run.api",
    "Result": "nst.run.engine",
    "Run": "nst.run.engine",
    "RunInterrupted": "nst.run.stopping",
    "StyleTransfer": "nst.run.module",
    "StyleTransferData": "nst.run.data",
    "fit": "nst.run.api",
    "stylize": "nst.run.api",
    "stylize_video": "nst.video.api",
}
__all__ = [
    "NSTError",
    "Network",
    "Picture",
    "Progress",
    "Result",
    "Run",
    "RunInterrupted",
    "StyleTransfer",
    "StyleTransferData",
    "fit",
    "stylize",
    "stylize_video",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'nst' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


if TYPE_CHECKING:
    from nst.errors import NSTError
    from nst.run.api import Progress, fit, stylize
    from nst.run.data import StyleTransferData
    from nst.run.engine import Picture, Result, Run
    from nst.run.module import StyleTransfer
    from nst.run.stopping import RunInterrupted
    from nst.train.network import Network
    from nst.video.api import stylize_video
