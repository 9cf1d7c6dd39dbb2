"""Generative models as Ray Train jobs: the VAE and PixelCNN land here (see the issues)."""
