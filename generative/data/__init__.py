"""Image datasets for the generative jobs: Parquet files read with Ray Data.

A dataset is a folder (local, ``s3://`` or ``gs://``) holding ``train.parquet`` and
``test.parquet``, each a Parquet file or a folder of them, with one row per image: ``image``
(the raw uint8 bytes, H x W x C in that order), ``height``, ``width``, ``channels`` and
``label`` (-1 where there is none). ``images.py`` writes, checks and reads that format;
``importers.py`` converts what users bring (MNIST IDX, CIFAR-10 batches, image folders);
``mnist5k`` is the embedded default (no network).
"""
