"""Generative models as Ray Train jobs: the VAE (``vae/``) on the shared harness
(``harness.py``) and data pipeline (``data/``), and the PixelCNN (``pixelcnn/``).

``MODELS`` lists the CLI names, importable without torch or Ray.
"""

MODELS = ("vae", "pixelcnn")
