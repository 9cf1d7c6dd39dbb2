"""Reading a weights file someone handed over (``torch.save`` of a dict of tensors) without
letting it run code or allocate more than the network it claims to hold.

``torch.save`` writes a zip archive: ``<name>/data.pkl`` (the pickled structure, with
persistent ids for the tensors), ``<name>/data/<i>`` (one entry per tensor storage) and a few
small records, all stored uncompressed. Before ``torch.load`` reads anything, the archive's
central directory is checked (``check_torch_archive``, for RL policy weights and generative
checkpoints alike): no compressed entry (so nothing inflates), the entries' sizes within a bound
(for RL weights, the tensors expected with a little slack), and the number of entries.
``torch.load(weights_only=True)`` then unpickles tensors and plain containers only; the caller
compares names and shapes with the network before loading them.
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


def check_torch_archive(
    path: Path,
    *,
    max_bytes: int,
    max_pickle_bytes: int = MAX_PICKLE_BYTES,
    max_entries: int | None = None,
) -> None:
    """Raise BadWeights unless ``path`` is a zip archive as ``torch.save`` writes it: at most
    ``max_bytes`` on disk and unpacked, every entry stored (``torch.save`` never compresses, so a
    small file cannot inflate), its pickle at most ``max_pickle_bytes``, at most ``max_entries``
    entries. Each message completes a sentence that starts with the file's name."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise BadWeights(f"is {size} bytes; at most {max_bytes}")
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (OSError, EOFError, ValueError, NotImplementedError, zipfile.BadZipFile) as exc:
        if isinstance(exc, BadWeights):
            raise
        why = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
        raise BadWeights(f"is not a whole torch zip archive ({why})") from None
    if max_entries is not None and len(infos) > max_entries:
        raise BadWeights(f"has {len(infos)} entries; at most {max_entries}")
    total = 0
    for info in infos:
        name = info.filename if info.filename.isprintable() else repr(info.filename)
        if info.compress_type != zipfile.ZIP_STORED:
            raise BadWeights(f"entry {name[:60]} is compressed; torch.save stores")
        if name.endswith(".pkl") and info.file_size > max_pickle_bytes:
            raise BadWeights(
                f"entry {name[:60]} is {info.file_size} bytes; at most {max_pickle_bytes}"
            )
        total += info.file_size
    if total > max_bytes:
        raise BadWeights(f"unpacks to {total} bytes; at most {max_bytes}")


def check_archive(path: Path, *, tensors: int, data_bytes: int) -> None:
    """``check_torch_archive`` with bounds from the network the file should hold: its storages
    at most ``2 * data_bytes`` (float64 copies of float32 weights are still accepted) plus
    64 KiB and the pickle, at most ``tensors + EXTRA_ENTRIES`` entries."""
    check_torch_archive(
        path,
        max_bytes=2 * data_bytes + (64 << 10) + MAX_PICKLE_BYTES,
        max_entries=tensors + EXTRA_ENTRIES,
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
