"""Where the config.yaml of a run made before nst's modules moved into subpackages names its
logger (``class_path: nst.tensorboard.RunTensorBoardLogger``), so that such a run can still be
run again or continued from its config."""

from nst.run.tensorboard import RunTensorBoardLogger

__all__ = ["RunTensorBoardLogger"]
