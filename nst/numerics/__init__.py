"""How good a picture is: VGG19's features, the losses and style statistics, the targets, and
the objective that puts them together (objective.py). Plain PyTorch, no Lightning."""
