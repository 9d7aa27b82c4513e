"""Step 1: load the dataset (local path or s3://) and fingerprint it; the validate step checks its columns."""

import pandas as pd

from mlstack.core import data as dataio


def ingest(data_uri: str) -> tuple[pd.DataFrame, str]:
    """Load ``data_uri`` and return (table, content fingerprint of the table as loaded)."""
    frame = dataio.load_table(data_uri)
    return frame, dataio.fingerprint(frame)
