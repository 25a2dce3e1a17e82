"""Training a style network (Johnson, Alahi & Fei-Fei 2016) as a LightningModule.

The network paints a batch of photos; the frozen VGG19 judges each painting with nst's
objective (nst.numerics.objective: the same layers, style statistics, blends and weights as a
picture's run), against the photo's own features as content and the style's statistics; Adam
lowers the batch's mean loss. Everything else (batches, worker processes, gradient averaging
over processes and machines, mixed precision, checkpoints, resume, logging) is Lightning's.
"""

from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.accelerators import CUDAAccelerator
from torch import Tensor

from nst.errors import NSTError
from nst.numerics import reuse
from nst.numerics.objective import Objective
from nst.numerics.targets import Images, Targets, compute_targets
from nst.numerics.vgg import VGGFeatures, canonical_layers, depth_for
from nst.run.checks import check_model_options
from nst.run.pictures import run_dir_of
from nst.train.architecture import TransformNet
from nst.train.data import PhotoData, check_batch
from nst.train.network import Network


class StyleNetworkTraining(LightningModule):
    """A style network learning to paint photos in one pass (Johnson et al. 2016).

    Logged losses are weighted, as a picture's run logs them: ``loss/total`` is the sum of
    ``loss/content``, ``loss/style`` and ``loss/tv``, each the mean over the batch's photos;
    ``val/*`` are the same on the held-out photos.

    Args:
        width: Channels of the network's first stage (the paper's 32; the deeper stages have 2×
            and 4×). Fewer paint faster, with less detail.
        blocks: Residual blocks of the network (the paper's 5).
        content_layers: VGG19 layers whose features the painting must share with the photo.
        style_layers: VGG19 layers whose style statistic the painting must share with the style.
        style_layer_weights: One weight per style layer (default: 1 each).
        content_weight: Weight of the content loss (feature MSE).
        style_weight: Weight of the style loss (as model.style_weight of a picture's run).
        style_loss: The style statistic: ``gram``, ``mean_std``, ``wasserstein`` or ``histogram``.
        tv_weight: Weight of the total-variation smoothness term.
        lr: Adam's learning rate (the paper's 1e-3).
        weights: VGG19 weights: ``imagenet`` (torchvision's file in its TORCH_HOME cache), a path
            to a ``.pth`` state dict, or ``random`` (seeded; for trying the machinery).
        pooling: ``max`` (torchvision's network) or ``avg``.
        padding: Padding of VGG19's first convolution: ``zeros`` or ``replicate``.
    """

    def __init__(
        self,
        width: int = 32,
        blocks: int = 5,
        content_layers: list[str] = ["conv4_2"],
        style_layers: list[str] = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"],
        style_layer_weights: list[float] | None = None,
        content_weight: float = 1.0,
        style_weight: float = 1e6,
        style_loss: Literal["gram", "mean_std", "wasserstein", "histogram"] = "gram",
        tv_weight: float = 0.0,
        lr: float = 1e-3,
        weights: str = "imagenet",
        pooling: Literal["max", "avg"] = "max",
        padding: Literal["zeros", "replicate"] = "zeros",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        for option in ("content_layers", "style_layers"):
            self.hparams[option] = canonical_layers(self.hparams[option], f"model.{option}")
        _check(self.hparams)
        self.net = TransformNet(width, blocks)
        # The frozen VGG19 is rebuilt from `weights`, never stored: checkpoints hold the network.
        self.vgg: VGGFeatures | None = None
        self.content_vgg: VGGFeatures | None = None
        self._style: dict[str, dict[str, Tensor]] = {}  # the style's statistics per layer, on the device
        self.skipped: set[str] = set()  # unreadable photos skipped this epoch (and why)

    @property
    def data(self) -> PhotoData:
        return self.trainer.datamodule

    def setup(self, stage: str) -> None:
        if self.vgg is not None:
            return
        h = self.hparams
        layers = [*h.content_layers, *h.style_layers]
        features = reuse.features(depth_for(layers), h.pooling, h.weights, h.padding).to(self.device)
        self.vgg = VGGFeatures(layers, features)
        # A batch of 256 px crops has maps as large as one 512 px picture's, but training is
        # short of time, not memory: PyTorch's own backward is faster here (5.12 against
        # 5.36 s a step at 256 px, batch 4, on a 2-core CPU, 2026-12-07).
        self.vgg.lean = False
        # The photos' own features need only the layers up to the deepest content layer.
        self.content_vgg = VGGFeatures(h.content_layers, features[: depth_for(h.content_layers)])
        for vgg in (self.vgg, self.content_vgg):
            vgg.requires_grad_(False)
        if isinstance(self.trainer.accelerator, CUDAAccelerator):
            # Tensor Cores read channels-last directly. Set here, before DDP wraps the network:
            # its gradient buckets take the parameters' layout when it is built.
            self.net.to(memory_format=torch.channels_last)

    def _features_of(self, image: Tensor, make: Any) -> dict[str, Any]:
        made: dict[str, Any] = {}

        def each(name: str, maps: Tensor) -> None:
            if (value := make(name, maps)) is not None:
                made[name] = value

        with torch.no_grad(), torch.autocast(self.device.type, enabled=False):
            self.vgg(image.to(self.device), each=each, keep=False)
        return made

    # The VGG19 is frozen and rebuilt: it stays out of the state dict (and so out of DDP's
    # parameter broadcast and checkpoints) by being kept out of the module's children.
    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("vgg", "content_vgg") and isinstance(value, torch.nn.Module):
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if not any(key.startswith("net.") for key in checkpoint.get("state_dict", {})):
            raise NSTError(
                "the checkpoint holds no style network (a picture's run writes such checkpoints); "
                "give the checkpoints/last.ckpt of an nst train run, or --ckpt_path last"
            )
        # A network of another shape cannot take the checkpoint's weights; say so in one line
        # rather than with load_state_dict's list of mismatched tensors.
        saved = checkpoint.get("hyper_parameters", {})
        for name in ("width", "blocks"):
            if name in saved and saved[name] != self.hparams[name]:
                raise NSTError(
                    f"the checkpoint's network has model.{name} {saved[name]}, these settings "
                    f"{self.hparams[name]}; continue with model.{name} {saved[name]} or start a new run"
                )

    def on_fit_start(self) -> None:
        if self.trainer.is_global_zero:
            self._say_what()
        for vgg in (self.vgg, self.content_vgg):
            vgg.to(self.device)
        if self.device.type == "cuda":
            self.vgg.use_channels_last()
        # The style's statistics, once, on the device (in float32, whatever the precision).
        h, data = self.hparams, self.data
        images = Images(tuple(data.styles[0].shape[-2:]), styles=[s.to(self.device) for s in data.styles])
        key = (reuse.weights_identity(h.weights), h.pooling, h.padding, str(self.device), "fp32")
        self._style = compute_targets(
            self._features_of, images, [], h.style_layers, data.blend, key, h.style_loss
        ).style

    def _say_what(self) -> None:
        h, data, trainer = self.hparams, self.data, self.trainer
        params = sum(p.numel() for p in self.net.parameters()) / 1e6
        processes = f" × {trainer.world_size} processes" if trainer.world_size > 1 else ""
        print(
            f"Training a style network ({params:.1f} M parameters: width {h.width}, {h.blocks} blocks) "
            f"on {len(data.train_files)} photos ({len(data.val_files)} held out), "
            f"{data.hparams.size} px crops in batches of {data.hparams.batch_size}{processes}, "
            f"style {', '.join(data.styles_sources)}; in {run_dir_of(trainer, 0, 1)}",
            flush=True,
        )

    def objective(self, photos: Tensor) -> Objective:
        """The objective of paintings of ``photos``: their own features as content."""
        h = self.hparams
        with torch.no_grad():
            content = {k: v.float() for k, v in self.content_vgg(photos).items()}
        return Objective(
            Targets(content=content, style=self._style_for(photos.shape[0])),
            content_layers=h.content_layers,
            style_layers=h.style_layers,
            content_weight=h.content_weight,
            style_weight=h.style_weight,
            style_layer_weights=h.style_layer_weights,
            tv_weight=h.tv_weight,
            style_loss=h.style_loss,
        )

    def _style_for(self, batch: int) -> dict[str, dict[str, Tensor]]:
        # Views, made at each use: kept, one made under validation's inference mode could not
        # be saved for a training step's backward.
        return {
            layer: {k: v.expand(batch, *v.shape[1:]) for k, v in stat.items()}
            for layer, stat in self._style.items()
        }

    def forward(self, photos: Tensor) -> Tensor:
        return self.net(photos)

    def losses(self, photos: Tensor) -> dict[str, Tensor]:
        """The weighted losses of the network's paintings of ``photos`` (their mean over the
        batch), by name: total, content, style, tv, style/<layer>."""
        if self.device.type == "cuda":
            photos = photos.contiguous(memory_format=torch.channels_last)
        objective = self.objective(photos)
        return objective.losses(objective.evaluate(self.vgg, self.net(photos)))

    def training_step(self, batch: tuple[Tensor, list[str]], index: int) -> Tensor:
        photos, skipped = batch
        photos = check_batch(photos, skipped, self._anywhere(photos is None))
        self.skipped.update(skipped)
        losses = self.losses(photos)
        self.log_dict({f"loss/{k}": v.detach() for k, v in losses.items()}, prog_bar=False)
        self.log("loss", losses["total"].detach(), prog_bar=True, logger=False)
        return losses["total"]

    def validation_step(self, batch: tuple[Tensor, list[str]], index: int) -> None:
        photos = check_batch(*batch, self._anywhere(batch[0] is None))
        losses = self.losses(photos)
        shown = ("total", "content", "style", "tv")
        # Every process measures every held-out photo: their means are the same number.
        values = {f"val/{k}": losses[k] for k in shown}
        self.log_dict(values, batch_size=photos.shape[0], prog_bar=False, sync_dist=True)

    def on_train_epoch_end(self) -> None:
        # Said once an epoch (a bad file among thousands is read once an epoch), above the bar.
        if self.skipped and self.trainer.is_global_zero:
            names = sorted(self.skipped)
            more = f" and {len(names) - 3} more" if len(names) > 3 else ""
            say = getattr(self.trainer.progress_bar_callback, "print", print)
            say(
                f"skipped {len(names)} unreadable photo{'s' if len(names) > 1 else ''} in epoch {self.current_epoch}: {', '.join(names[:3])}{more}"
            )
        if self.skipped or self.trainer.world_size > 1:  # every process logs, or the sum waits
            self.log("data/skipped", float(len(self.skipped)), sync_dist=True, reduce_fx="sum")
        self.skipped = set()

    def _anywhere(self, failed: bool) -> bool:
        # Whether any process's batch failed: all must stop at the same step, or the others
        # would wait for it at the next gradient average for ever.
        if self.trainer.world_size > 1:
            return self.trainer.strategy.reduce_boolean_decision(failed, all=False)
        return failed

    def on_train_start(self) -> None:
        # A continued run restores Adam's state, learning rate included; the one given now is
        # the one meant (lowering it to fine-tune is what a continue is for).
        for optimizer in self.trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = self.hparams.lr

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.net.parameters(), lr=self.hparams.lr)

    def network(self) -> Network:
        """The network as it paints now, with what it was trained on."""
        h, data = self.hparams, self.trainer.datamodule if self._trainer is not None else None
        about: dict[str, Any] = {"training": dict(h), "steps": self.global_step}
        if data is not None:
            about |= {"style": list(data.styles_sources), "size": data.hparams.size}
        net = TransformNet(h.width, h.blocks)
        net.load_state_dict({k: v.float() for k, v in self.net.state_dict().items()})
        return Network(net, about)


def _check(h: Any) -> None:
    for name in ("width", "blocks"):
        if h[name] < 1:
            raise NSTError(f"model.{name} must be at least 1, got {h[name]}")
    # A picture's rules for the settings both have (layers, weights, lr, VGG19 weights).
    check_model_options({"lbfgs_history": 1, "phases": None, **dict(h)})
