"""Ray Tune's machinery for rlgen: an experiment (``experiment``), checked and run or resumed
(``run``), its trials (``trial``: each an ordinary rlgen run through the job's kind) and its
summary (``summary``). The experiments themselves are in ``tune_configs/``. Nothing here asks
which kind of job it runs: ``jobs.kind_of(job)`` answers for it."""
