"""Reading a weights file someone handed over (``torch.save`` of a dict of tensors) without
letting it run code or allocate more than the network it claims to hold.

``torch.save`` writes a zip archive: ``<name>/data.pkl`` (the pickled structure, with
persistent ids for the tensors), ``<name>/data/<i>`` (one entry per tensor storage) and a few
small records. Before ``torch.load`` reads anything, the archive's central directory is checked:
the entries' uncompressed sizes (what reading them allocates, whatever a deflated entry's size
on disk) must fit the tensors expected, with a little slack, and the number of entries the
tensor count. ``torch.load(weights_only=True)`` then unpickles tensors and plain containers
only; the caller compares names and shapes with the network before loading them.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

# The pickled structure of a state dict: a few hundred bytes per tensor.
MAX_PICKLE_BYTES = 1 << 20
# Records torch writes besides data.pkl and the storages (version, byteorder, ...).
EXTRA_ENTRIES = 8


class BadWeights(ValueError):
    """The file is not the weights expected; the message says why in a few words."""


def expected_bytes(state: dict[str, Any]) -> int:
    """Bytes of the tensors of a state dict (what a file holding them needs for its storages)."""
    return sum(t.numel() * t.element_size() for t in state.values())


def check_archive(path: Path, *, tensors: int, data_bytes: int) -> None:
    """Raise BadWeights unless ``path`` is a torch zip archive whose storages together
    uncompress to at most ``2 * data_bytes + 64 KiB`` (float64 copies of float32 weights are
    still accepted), its pickle to at most ``MAX_PICKLE_BYTES``, with at most
    ``tensors + EXTRA_ENTRIES`` entries."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (OSError, zipfile.BadZipFile) as exc:
        raise BadWeights(f"not a torch weights archive ({type(exc).__name__})") from None
    if len(infos) > tensors + EXTRA_ENTRIES:
        raise BadWeights(f"{len(infos)} entries for {tensors} tensors")
    budget = 2 * data_bytes + (64 << 10)
    storages = sum(i.file_size for i in infos if "/data/" in i.filename)
    pickles = sum(i.file_size for i in infos if i.filename.endswith(".pkl"))
    others = sum(i.file_size for i in infos) - storages - pickles
    if storages > budget or pickles > MAX_PICKLE_BYTES or others > MAX_PICKLE_BYTES:
        total = storages + pickles + others
        raise BadWeights(
            f"unpacks to {total:,} bytes, more than the {data_bytes:,} bytes of this network"
        )


def check_state(loaded: Any, expected: dict[str, Any]) -> None:
    """Raise BadWeights unless ``loaded`` is a dict with exactly the expected names and
    shapes."""
    import torch

    if not isinstance(loaded, dict) or not all(
        isinstance(v, torch.Tensor) for v in loaded.values()
    ):
        raise BadWeights("not a dict of tensors")
    missing = sorted(set(expected) - set(loaded))
    extra = sorted(set(loaded) - set(expected))
    if missing or extra:
        name = (missing or extra)[0]
        raise BadWeights(f"{'no tensor' if missing else 'unexpected tensor'} {name[:60]}")
    for name, tensor in expected.items():
        if tuple(loaded[name].shape) != tuple(tensor.shape):
            raise BadWeights(
                f"{name[:60]} has shape {tuple(loaded[name].shape)}, expected {tuple(tensor.shape)}"
            )


def load_checked(path: Path, expected: dict[str, Any]) -> dict[str, Any]:
    """The state dict in ``path`` after ``check_archive`` and ``check_state`` against
    ``expected`` (a network's own ``state_dict()``)."""
    import torch

    check_archive(path, tensors=len(expected), data_bytes=expected_bytes(expected))
    try:
        loaded = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - any failure to read means a bad file
        raise BadWeights(f"unreadable ({type(exc).__name__})") from None
    check_state(loaded, expected)
    return loaded
