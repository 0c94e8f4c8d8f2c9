"""Typed manifest rows. A source row and a clip row hold only their schema's columns: a misspelt or unknown
column fails where it is set instead of vanishing from the Parquet file (the values' types are the
schema's, checked when the rows become a table: records/schema.to_table). What a worker keeps for a row
while its stages run (decoded frames, audio, face tracks, latents) rides apart in `scratch` and is never
written out: the row itself is what the manifest gets."""
from __future__ import annotations

from typing import Any

import pyarrow as pa

from records.schema import CLIPS, SOURCES


class Row(dict):
    schema: pa.Schema = pa.schema([])
    columns: frozenset[str] = frozenset()

    def __init__(self, fields=(), scratch: Any = None, **more):
        super().__init__()
        self.update(fields, **more)
        self.scratch = scratch

    def check(self, keys) -> None:
        unknown = [k for k in keys if k not in self.columns]
        if unknown:
            raise KeyError(f"{type(self).__name__} has no column {unknown[0]!r} (see records/schema.py)")

    def __setitem__(self, key: str, value) -> None:
        self.check([key])
        super().__setitem__(key, value)

    def update(self, fields=(), **more) -> None:
        items = dict(fields, **more)
        self.check(items)
        super().update(items)

    def setdefault(self, key: str, default=None):
        self.check([key])
        return super().setdefault(key, default)


class SourceRow(Row):
    """A row of sources.parquet."""
    schema, columns = SOURCES, frozenset(SOURCES.names)


class ClipRow(Row):
    """A row of clips.parquet."""
    schema, columns = CLIPS, frozenset(CLIPS.names)
