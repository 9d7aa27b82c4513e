"""Step 1: load the dataset (local path or s3://), keep the contract's columns, fingerprint it."""

import pandas as pd

from mlstack.core import data as dataio
from mlstack.core.contract import DataContract


def ingest(data_uri: str, contract: DataContract) -> tuple[pd.DataFrame, str]:
    """Load ``data_uri`` and return (table, content fingerprint of the table as loaded)."""
    frame = dataio.load_table(data_uri)
    return frame, dataio.fingerprint(frame)
