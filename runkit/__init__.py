"""Run plumbing shared by every rlgen job: user errors, run directories, result files,
``--config``/``--set`` overrides and TensorBoard writers. Kept deliberately small."""

from runkit.errors import UserError

__all__ = ["UserError"]
