"""Every shipped config parses, type-checks and builds its model and data without running."""

from pathlib import Path

import pytest
import torch

from nst import StyleTransfer, StyleTransferData
from nst.run.settings import Settings
from nst.train.data import PhotoData
from nst.train.module import StyleNetworkTraining
from nst.train.settings import TrainSettings
from nst.video.options import VideoSettings


def make_cli(args):
    """Build a config's objects as a run would, without choosing a run directory (a video's
    config as nst video reads it, a network's training as nst train does)."""
    if any(str(a).endswith("train.yaml") for a in args):
        return TrainSettings([args])
    video = any(str(a).endswith("video.yaml") for a in args)
    return (VideoSettings if video else Settings)([args])


CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))  # sweeps: test_sweep.py


def test_there_are_configs():
    assert any(path.name == "starry.yaml" for path in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_validates(path, workdir):
    cli = make_cli(["--config", str(path)])
    training = path.name == "train.yaml"
    assert isinstance(cli.model, StyleNetworkTraining if training else StyleTransfer)
    assert isinstance(cli.datamodule, PhotoData if training else StyleTransferData)
    assert cli.trainer_options["max_steps"] > 0
    assert not (workdir / "logs").exists()  # validating starts no run


def test_starry_is_the_paper_setting():
    cli = make_cli(["--config", str(next(p for p in CONFIGS if p.name == "starry.yaml"))])
    h = cli.model.hparams
    assert h.content_layers == ["conv4_2"]
    assert h.style_layers == ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
    assert (h.content_weight, h.style_weight, h.init, h.optimizer) == (1.0, 1e6, "content", "lbfgs")
    assert cli.datamodule.hparams.size == 512 and cli.trainer_options["max_steps"] == 500
    assert cli.datamodule.hparams.content.startswith("https://upload.wikimedia.org/")


def test_train_is_the_papers_setting():
    cli = make_cli(["--config", str(next(p for p in CONFIGS if p.name == "train.yaml"))])
    h, data = cli.model.hparams, cli.datamodule.hparams
    assert (h.width, h.blocks, h.lr) == (32, 5, 1e-3)  # Johnson et al.'s network and Adam
    assert (data.size, data.batch_size, cli.trainer_options["max_steps"]) == (256, 4, 40_000)


def test_starry_with_adam_gets_adams_learning_rate(workdir, images):
    import nst

    path = next(p for p in CONFIGS if p.name == "starry.yaml")
    cli = make_cli(["--config", str(path), "--model.optimizer", "adam"])
    assert cli.model.hparams.lr is None  # so the optimizer's own default applies
    # The starry run itself, switched to Adam (local images, random weights, one tiny step):
    # its optimizer runs at Adam's default of 0.02, not L-BFGS's 1.0.
    offline = {"data.content": str(images["content"]), "data.style": str(images["style"])}
    offline |= {"data.size": 32, "model.weights": "random", "trainer.max_steps": 1}
    result = nst.fit(path, {**offline, "model.optimizer": "adam", "trainer.enable_progress_bar": False})
    saved = torch.load(result.checkpoint, weights_only=True)
    assert saved["optimizer_states"][0]["param_groups"][0]["lr"] == 0.02


def test_starry_hires_goes_coarse_to_fine_to_its_size():
    cli = make_cli(["--config", str(next(p for p in CONFIGS if p.name == "starry_hires.yaml"))])
    phases = cli.model.hparams.phases
    sizes = [phase["size"] for phase in phases]
    assert sizes == sorted(sizes) and sizes[0] == 128 and sizes[-1] == cli.datamodule.hparams.size == 1024
    assert cli.trainer_options["max_steps"] == sum(
        phase["steps"] for phase in phases
    )  # the phases set the length


def test_a_config_saved_before_the_modules_moved_still_names_its_logger(workdir, images):
    import yaml

    from nst.run.tensorboard import RunTensorBoardLogger

    old = {  # as a run's config.yaml said it before nst.tensorboard moved to nst.run.tensorboard
        "data": {"content": str(images["content"]), "style": str(images["style"]), "size": 32},
        "trainer": {"logger": {"class_path": "nst.tensorboard.RunTensorBoardLogger",
                               "init_args": {"save_dir": "logs", "name": "old", "default_hp_metric": False}}},
    }  # fmt: skip
    (workdir / "old.yaml").write_text(yaml.safe_dump(old))
    cli = make_cli(["--config", str(workdir / "old.yaml")])
    assert isinstance(cli.trainer_options["logger"], RunTensorBoardLogger)
