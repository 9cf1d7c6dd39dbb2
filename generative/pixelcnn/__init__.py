"""PixelCNN (van den Oord et al. 2016) as a Ray Train job on the shared generative job code.

    p(x) = prod_i p(x_i | x_1 .. x_{i-1}),  pixels in raster order, colours R -> G -> B

Pieces: ``model.py`` (masked convolutions A/B with colour masks, the plain residual stack and
the gated variant), ``losses.py`` (exact NLL), ``sampling.py`` (raster-order sampling and
completion of the bottom half), ``train.py`` (the Job: loss, metrics, grids), ``config.py``.
"""
