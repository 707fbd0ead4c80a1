"""Provenance of every image in a data set, as the former `<data>/index.csv` manifest had it: now read from the
catalog (`otter.data.catalog`, which imported any index.csv once). `catalog.export_index` writes index.csv."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from . import catalog, fingerprint

COLUMNS = catalog.INDEX_COLUMNS
MANIFEST_NAME = catalog.INDEX_CSV
now = catalog.now
locked = catalog.locked
sha256_file = fingerprint.sha256_file


def read(root: os.PathLike | str) -> pd.DataFrame:
    """The catalog as index.csv's table (COLUMNS, all text): current images, then the trash."""
    if not Path(root).is_dir():
        return pd.DataFrame(columns=COLUMNS)
    with catalog.connection(root) as con:
        rows = [[str(v) if v is not None else "" for v in r] for r in catalog.index_rows(con)]
    return pd.DataFrame(rows, columns=COLUMNS)
