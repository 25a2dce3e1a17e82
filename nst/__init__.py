"""nst: Gatys-style neural style transfer as a PyTorch Lightning project."""

from nst.data import StyleTransferData
from nst.errors import NSTError
from nst.module import StyleTransfer

__all__ = ["NSTError", "StyleTransfer", "StyleTransferData"]
