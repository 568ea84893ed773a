"""What is done with a finished run: eval and predict, runs and compare, plots, autoencoder vs PCA."""
