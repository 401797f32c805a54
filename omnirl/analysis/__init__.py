"""Reading results back: run directories, offline and online W&B runs, curves for plots."""
