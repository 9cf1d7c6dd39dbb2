"""Generative models as Ray Train jobs: the VAE (``vae/``) and the PixelCNN (``pixelcnn/``) on
the shared job code (``configure``, ``worker_loop``, ``run_loop``, ``checkpoints``, ``grids``,
``sampling``) and the Parquet datasets (``data/``).

``MODELS`` maps the CLI name to the import path of the model's Job, so the CLI can check a name
without importing torch or Ray.
"""

MODELS = {
    "vae": "generative.vae.train:VAEJob",
    "pixelcnn": "generative.pixelcnn.train:PixelCNNJob",
}
