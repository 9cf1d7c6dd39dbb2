"""One Tune trial = one ordinary rlgen run, in ``<experiment>/trials/<trial id>/``.

The trial calls the same run API as ``rlgen train`` (its job kind's ``run_trial``): run.json,
result.json, TensorBoard curves, checkpoints and resume are those of any run. What every trial
shares, whatever its kind:

- The last report of a run goes to Tune only after the run has written result.json, so that a
  scheduler's stop decision on it (ASHA at its last rung) cannot cut the run short.
- Where it starts: the kind decides how a trial continues (a PBT exploit's checkpoint, its own
  newest checkpoint, Ray Train's own resume); a run directory that already holds result.json
  means the trial had finished: its result is reported again and nothing is trained. Each start
  is one line in ``trials/<trial id>.log``.
- One start at a time: Tune stops a trial's actor gracefully and may start the trial again (a
  PBT exploit) before the old start has stopped writing; the new one waits for it
  (``trial_lock``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jobs
from runkit.rundir import RESULT_FILE
from runkit.trials import TrialSetup, last_report, log_line, trial_lock


def run_trial(config: dict[str, Any], setup: TrialSetup) -> None:
    """Tune's function trainable: ``config`` holds the sampled config keys."""
    from ray import tune

    kind = jobs.kind_of(setup.job)
    trial_id = tune.get_context().get_trial_id()
    run_dir = Path(setup.trials_dir) / trial_id
    with trial_lock(run_dir):  # an earlier start of this trial may still be stopping
        if (run_dir / RESULT_FILE).is_file():
            log_line(run_dir, "finished before: its result reported again, nothing trained")
            tune.report(last_report(kind.finished_metrics(run_dir)))
            return
        kind.run_trial({**setup.fixed, **config}, setup, run_dir, trial_id)
