"""One run, through Lightning: settings in (settings.py), one engine (engine.py: Run), the
LightningModule that drives the paintings (module.py), and what a run writes and keeps.

``Run`` and ``Result`` are importable from here too (``from nst.run import Run``)."""

from typing import Any


def __getattr__(name: str) -> Any:  # imported when first used, as nst's own names are
    if name in ("Run", "Result", "Picture"):
        from nst.run import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'nst.run' has no attribute {name!r}")
