"""What is wrong with a Parquet image split, file by file and batch by batch, for
``images.check_split``: its columns and types, what its metadata says the image column
inflates to, and each image's bytes or values."""

from __future__ import annotations

from typing import Any

import numpy as np

COLUMNS = ("image", "height", "width", "channels", "label")


def schema_problem(schema: Any) -> str | None:
    """What is wrong with a split file's columns, or None: ``height``, ``width``,
    ``channels`` (and ``label`` if present) integers; ``image`` bytes or lists of numbers."""
    import pyarrow as pa

    names = list(schema.names)
    missing = [c for c in COLUMNS[:4] if c not in names]
    if missing:
        return f"missing column(s) {', '.join(missing)}"
    twice = sorted({c for c in COLUMNS if names.count(c) > 1})
    if twice:
        return f"column(s) {', '.join(twice)} appear more than once"
    for name in (*COLUMNS[1:4], *(["label"] if "label" in names else [])):
        kind = schema.field(name).type
        if not pa.types.is_integer(kind):
            return f"column {name} holds {kind}, not integers"
    kind = schema.field("image").type
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return None
    if (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and (
        pa.types.is_integer(kind.value_type) or pa.types.is_floating(kind.value_type)
    ):
        return None
    return f"column image holds {kind}, not bytes (or lists of numbers)"


def image_declared(fragments: list[Any]) -> tuple[int, int]:
    """What the files' metadata says of the ``image`` column: its uncompressed bytes (what
    reading it inflates to, dictionary pages included) and its count of stored values (a
    list column's numbers)."""
    size, values = 0, 0
    for fragment in fragments:
        meta = fragment.metadata
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for i in range(group.num_columns):
                chunk = group.column(i)
                if chunk.path_in_schema.split(".")[0] == "image":
                    size += chunk.total_uncompressed_size
                    values += chunk.num_values
    return size, values


def image_problem(batch: Any, first_row: int, shape: tuple[int, int, int]) -> str | None:
    """What is wrong with the images of one batch of rows, or None."""
    import pyarrow as pa
    import pyarrow.compute as pc

    h, w, c = shape
    column = batch.column("image")
    if column.null_count:
        row = first_row + int(np.flatnonzero(np.asarray(column.is_null()))[0])
        return f"row {row} has no image (null)"
    lengths = None
    if pa.types.is_dictionary(column.type):  # bytes, each distinct value held once
        lengths_of = pc.fill_null(pc.binary_length(column.dictionary), -1)
        lengths = pc.take(lengths_of, column.indices)
    elif pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        lengths = pc.binary_length(column)
    if lengths is not None:
        lengths = np.asarray(lengths.to_numpy(zero_copy_only=False))
        bad = np.flatnonzero(lengths != h * w * c)
        if len(bad):
            return (
                f"row {first_row + int(bad[0])} holds {int(lengths[bad[0]])} bytes, "
                f"not {h * w * c} (= {h}x{w}x{c} uint8)"
            )
        return None
    # a list of numbers per image: must be finite integers in 0..255
    lengths = np.asarray(pc.list_value_length(column).to_numpy(zero_copy_only=False))
    if np.any(lengths != h * w * c):
        return f"image lists do not all hold {h}x{w}x{c} values"
    flat = pc.list_flatten(column)
    values = np.asarray(flat.to_numpy(zero_copy_only=False), float)
    if flat.null_count or np.isnan(values).any():
        return "image values contain NaN or nulls"
    if len(values) and (values.min() < 0 or values.max() > 255):
        return "image values must be integers in 0..255"
    if not np.all(values == np.round(values)):
        return "image values must be integers in 0..255"
    return None
