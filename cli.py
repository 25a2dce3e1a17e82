"""Neural style transfer: ``python cli.py fit --config configs/starry.yaml`` (see README.md)."""

from nst.cli import main

if __name__ == "__main__":
    main()
