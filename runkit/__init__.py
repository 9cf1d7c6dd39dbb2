"""The bottom layer every rlgen job stands on; it imports nothing else of the project.

- ``errors``: ``UserError``, the one exception for bad input (exit status 2 on the CLI),
  ``RunFailed`` for a run that cannot go on (exit status 1), and ``first_line`` for the one
  line they give about a lower-level failure.
- ``rundir``: run directories, ``run.json`` / ``result.json``, the fresh-or-resume sequence.
- ``checkpoints``: the one rule for finding a run's newest checkpoint.
- ``results``: the typed results and per-iteration reports the run API returns and streams.
- ``progress``: one terminal line per iteration or epoch.
- ``tb``: TensorBoard writers (scalars against env steps or epochs, images, videos).
- ``cluster``: connecting to Ray (embedded, ``RAY_ADDRESS``, a started head) and GPU policy.
- ``storage``: ``s3://`` / ``gs://`` outputs: a local working copy mirrored through pyarrow.
- ``overrides``: ``--config FILE`` and ``--set KEY=VALUE``.
- ``checks``: range / choice / type checks whose messages name the key and value.
"""

from runkit.errors import UserError

__all__ = ["UserError"]
