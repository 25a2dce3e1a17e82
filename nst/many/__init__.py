"""Many pictures: sweeps (a grid of runs and its figure), folders of photos and paintings, the
processes a sweep is spread over, and which cells are optimised together in one batch."""
