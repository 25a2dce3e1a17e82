"""nst: Gatys-style neural style transfer as a PyTorch Lightning project.

import nst
picture = nst.stylize("photo.jpg", "painting.jpg", size=512, steps=500)
result = nst.fit("configs/starry.yaml", {"data.size": 256})
"""

import importlib
from typing import TYPE_CHECKING, Any

# Imported when first used: the command line installs its Ctrl-C handling before torch and
# Lightning take seconds to import.
_EXPORTS = {
    "NSTError": "nst.errors",
    "Progress": "nst.api",
    "Result": "nst.run",
    "Run": "nst.run",
    "RunInterrupted": "nst.stopping",
    "StyleTransfer": "nst.module",
    "StyleTransferData": "nst.data",
    "fit": "nst.api",
    "stylize": "nst.api",
}
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


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'nst' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


if TYPE_CHECKING:
    from nst.api import Progress, fit, stylize
    from nst.data import StyleTransferData
    from nst.errors import NSTError
    from nst.module import StyleTransfer
    from nst.run import Result, Run
    from nst.stopping import RunInterrupted
