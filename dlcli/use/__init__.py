"""What is done with a finished run: eval, predict, export, runs/compare, plots."""
