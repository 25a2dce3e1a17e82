"""What makes a step fast on the device it runs on, set once per process before a run."""

import ctypes
import os

import torch

_NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"


def drop_futile_nvml_check() -> None:
    """Spare torch's optimizers a failed library load at every step on machines without NVIDIA's driver.

    Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1 on import, so that asking whether CUDA is
    there asks NVML instead of initialising CUDA (which would spoil processes forked later).
    torch's optimizers ask at every step. Where NVML cannot be loaded (no NVIDIA driver: a
    CPU-only machine, a Mac), torch then tries to load it on every call, fails, and falls back
    to the CUDA runtime's count after all: ~0.2 ms a step on a 2-core CPU for an answer that
    the fallback alone gives. Where the driver is there, nothing changes.
    """
    if os.environ.get(_NVML_CHECK) != "1":
        return
    try:
        ctypes.CDLL("libnvidia-ml.so.1")  # the name torch loads on every platform
    except OSError:
        del os.environ[_NVML_CHECK]


def prepare(device: torch.device, tf32: bool) -> bool:
    """Set the process up for steps on ``device``; returns whether the network should run in
    channels-last memory format there.

    On CUDA: cuDNN chooses each convolution's fastest algorithm for the run's shapes once (the
    shapes never change within a phase); TF32 (10-bit mantissa products, about twice the
    convolution speed on Ampere and later) only when asked for, since it changes results at the
    third significant digit and PyTorch's default allows it for convolutions; and the channels-
    last layout, which Tensor Cores read without transposing. On a CPU with oneDNN (PyTorch's
    x86 and ARM builds) channels-last too, the layout oneDNN's convolutions work in: VGG19's
    forward and backward took 0.75-0.95 of their NCHW time at 32 px, about the same at 64 px
    and 0.75-0.8 at 512 px on the 2-core AMD EPYC this project is measured on (bench/speed.py:
    a 256 px L-BFGS step 0.80 of the reference loop's, against 0.98 without). Elsewhere (MPS)
    nothing changes.
    """
    if device.type == "cpu":
        return torch.backends.mkldnn.is_available()
    if device.type != "cuda":
        return False
    torch.backends.cudnn.benchmark = not torch.are_deterministic_algorithms_enabled()
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    return True
