"""Files and folders rlgen writes, under hostile neighbours (docs/security.md: the path
rules): a symlink planted at a temporary file's name or as a partial checkpoint is never
followed (its target stays as it was), and a run directory, its new parents, the checkpoints,
Tune's trial folders and the mirror are mode 0700 whatever the umask. Object keys, the mirror
root and what the mirror copies are in ``test_hostile_paths.py``."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

from runkit import paths, storage
from runkit.errors import UserError
from runkit.rundir import new_run_dir, open_run, write_json_atomic
from tests import test_hostile_paths
from tests.test_hostile_paths import _mode, _tree

open_umask = test_hostile_paths.open_umask  # the fixture: umask 000 for the test

# --- temporary files ------------------------------------------------------------------------


def _json(run: Path) -> Path:
    write_json_atomic(run / "run.json", {"a": 1})
    return run / "run.json"


def _png(run: Path) -> Path:
    import numpy as np

    from generative.grids import save_png

    save_png(np.zeros((2, 2, 3), np.uint8), run / "samples.png")
    return run / "samples.png"


# (writer, the temporary name it uses beside its output, what it writes)
TMP_WRITERS = [("json", "run.json.tmp", _json), ("png", "samples.png.tmp.png", _png)]


@pytest.mark.parametrize(
    ("case", "tmp_name", "write"), TMP_WRITERS, ids=[c for c, *_ in TMP_WRITERS]
)
@pytest.mark.parametrize("dangling", [False, True], ids=["to a file", "dangling"])
def test_a_symlink_at_a_temporary_name_is_not_written_through(
    tmp_path, open_umask, case, tmp_name, write, dangling
):
    run = tmp_path / "run"
    run.mkdir()
    target = tmp_path / "target"
    if not dangling:
        target.write_text("someone else's file")
    (run / tmp_name).symlink_to(target)
    out = write(run)
    if dangling:
        assert not target.exists()
    else:
        assert target.read_text() == "someone else's file"
    assert not (run / tmp_name).exists() and not (run / tmp_name).is_symlink()
    assert out.is_file() and not out.is_symlink() and out.stat().st_size > 0
    assert _mode(out) == 0o600


@dataclasses.dataclass
class _Spec:
    algorithm: str = "reinforce"


class _Algo:
    """What ``save_checkpoint`` asks of an RLlib Algorithm: its own checkpoint and weights."""

    def save_to_path(self, path: str) -> None:
        Path(path, "algorithm_state.pkl").write_bytes(b"rllib state")

    @property
    def learner_group(self) -> Any:
        return self

    def get_weights(self, module_ids: list[str]) -> dict[str, Any]:
        return {module_ids[0]: {"w": [0.0, 1.0]}}


def test_a_symlinked_partial_checkpoint_is_unlinked_not_followed(tmp_path, open_umask):
    from algorithms.checkpoints import save_checkpoint

    run = new_run_dir(str(tmp_path / "run"), prefix="x", resume=False)
    (run / "checkpoints").mkdir()
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep")
    (run / "checkpoints" / ".tmp_iter_000001").symlink_to(victim, target_is_directory=True)
    (run / "checkpoints" / ".tmp_iter_000000").symlink_to(victim / "precious")
    ckpt = save_checkpoint(_Algo(), run, _Spec(), {"iteration": 1})
    assert _tree(victim) == {"precious": b"keep"}
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["iter_000001"]
    assert (ckpt / "algorithm_state.pkl").read_bytes() == b"rllib state"
    assert _mode(ckpt) == 0o700 and _mode(ckpt / "rlgen_state.json") == 0o600


# --- modes under umask 000 --------------------------------------------------------------------


def _given_output(tmp: Path) -> list[Path]:
    run = new_run_dir(str(tmp / "a" / "b" / "run"), prefix="x", resume=False)
    return [tmp / "a", tmp / "a" / "b", run]


def _default_output(tmp: Path) -> list[Path]:
    run = new_run_dir(None, prefix="vae", resume=False)
    return [tmp / "runs", run]


def _empty_output(tmp: Path) -> list[Path]:
    (tmp / "empty").mkdir(mode=0o777)
    return [new_run_dir(str(tmp / "empty"), prefix="x", resume=False)]


def _trial_dir(tmp: Path) -> list[Path]:
    from runkit.trials import log_line

    log_line(tmp / "exp" / "trials" / "t1", "fresh start")
    return [tmp / "exp", tmp / "exp" / "trials"]


def _checkpoints(tmp: Path) -> list[Path]:
    from algorithms.checkpoints import save_checkpoint

    run = new_run_dir(str(tmp / "r"), prefix="x", resume=False)
    ckpt = save_checkpoint(_Algo(), run, _Spec(), {"iteration": 3})
    return [run, run / "checkpoints", ckpt]


def _mirror_copy(tmp: Path) -> list[Path]:
    local = storage.mirror_dir("s3://bucket/run")
    paths.make_private_dirs(local, below=storage.mirror_root())
    return [tmp / "m", tmp / "m" / "mirror", *list(local.parents)[:3], local]


DIR_MAKERS = [
    ("--output a/b/run", _given_output),
    ("runs/<name>", _default_output),
    ("an empty --output", _empty_output),
    ("tune trials", _trial_dir),
    ("checkpoints", _checkpoints),
    ("mirror copy", _mirror_copy),
]


@pytest.mark.parametrize(("case", "make"), DIR_MAKERS, ids=[c for c, _ in DIR_MAKERS])
@pytest.mark.parametrize("umask", [0o000, 0o277], ids=["umask 000", "umask 277"])
def test_directories_rlgen_creates_are_private_whatever_the_umask(
    tmp_path, monkeypatch, case, make, umask
):
    """0700 whatever the umask: 000 would leave mkdir's default mode open to everyone, 277
    filters the owner's bits out of ``mkdir(mode=0o700)``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(storage.MIRROR_ENV, str(tmp_path / "m" / "mirror"))
    old = os.umask(umask)
    try:
        made = make(tmp_path)
        run_json = made[-1] / "written.json"
        write_json_atomic(run_json, {"x": 1})
    finally:
        os.umask(old)
    assert {str(p): _mode(p) for p in made} == {str(p): 0o700 for p in made}
    assert _mode(run_json) & 0o077 == 0  # 0600 less what the umask takes


@dataclasses.dataclass
class _RunSpec:
    job: str = "x"


def test_an_output_named_by_a_dangling_symlink_is_refused_not_followed(tmp_path):
    """The run directory is made after the ``ready`` hook (which may start Ray): a symlink given
    as ``--output`` is refused there, and its target is not made."""

    target = tmp_path / "elsewhere" / "run"
    (tmp_path / "out").symlink_to(target, target_is_directory=True)
    ready = []
    with pytest.raises(UserError, match="exists and is not a directory"):
        open_run(
            _RunSpec, kind="rl", job="x", job_field="job", output=tmp_path / "out", resume=False,
            fresh=_RunSpec, prepare=lambda spec: None, prefix=lambda spec: "x",
            ready=ready.append,
        )  # fmt: skip
    assert not target.exists() and not target.parent.exists()
    assert len(ready) == 1
