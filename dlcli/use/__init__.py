"""What is done with a finished run: eval and predict, export, runs and compare, plots, autoencoder vs PCA."""
