"""The compiled serving artifact: an ONNX export of the pipeline, run by onnxruntime.

Registration (``components/compile.py``) writes ``compiled/model.onnx`` into the MLflow model
directory and a ``mlstack_compiled`` block into its MLmodel metadata only when the export passed
the parity gate on the evaluation set. ``open_compiled`` reads that block back, checks the file
against the recorded sha256 and opens an onnxruntime session; any doubt means ``None`` plus the
reason, and the caller serves the scikit-learn pipeline and says why.

The graph takes one ``[N, 1]`` input per contract feature: float64 for numeric features (missing =
NaN) and string for categorical ones, where a missing value is fed as the imputer's fill value
(``missing_tokens``). The pipeline maps a missing category to that same fill value, so both
engines see the same category (a client sending the fill value literally is treated alike too).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlstack.core.contract import DataContract

if TYPE_CHECKING:  # only the frame path (a request that needed the full contract check) uses pandas
    import pandas as pd

log = logging.getLogger(__name__)

METADATA_KEY = "mlstack_compiled"
ONNX_PATH = "compiled/model.onnx"
PROBABILITY_OUTPUT = "probabilities"


def sha256_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def session_for(onnx_bytes: bytes, threads: int = 1) -> Any:
    """An onnxruntime CPU session; one intra-op thread (scale out with workers, as for sklearn)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


@dataclass
class OnnxEngine:
    """Positive-class probabilities from the ONNX graph, fed from JSON columns or a coerced frame."""

    session: Any
    contract: DataContract
    missing_tokens: dict[str, str]
    name: str = "onnx"

    def __post_init__(self) -> None:
        self._numeric = [f.name for f in self.contract.features if not f.is_categorical]
        self._categorical = [f.name for f in self.contract.features if f.is_categorical]

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        (proba,) = self.session.run([PROBABILITY_OUTPUT], feeds)
        return np.asarray(proba[:, 1], dtype=np.float64)

    def predict_columns(self, columns: dict[str, list[Any]]) -> np.ndarray:
        """Score request columns that passed the contract's fast check (JSON scalars, None = missing).

        Mirrors ``coerce_features``: numbers become float64 (None -> NaN), categories ``str(value)``.
        """
        feeds: dict[str, np.ndarray] = {}
        # one conversion for every numeric column (a row of the [features, rows] array is a
        # contiguous [rows, 1] view): one NumPy call instead of one per feature
        numeric = np.array([columns[name] for name in self._numeric], dtype=np.float64)
        for index, name in enumerate(self._numeric):
            feeds[name] = numeric[index].reshape(-1, 1)
        for name in self._categorical:
            token = self.missing_tokens[name]
            feeds[name] = np.array(
                [token if value is None else str(value) for value in columns[name]], dtype=object
            ).reshape(-1, 1)
        return self._run(feeds)

    def predict_features(self, features: pd.DataFrame) -> np.ndarray:
        """Score a frame already passed through ``coerce_features`` (NaN = missing everywhere)."""
        import pandas as pd

        feeds: dict[str, np.ndarray] = {}
        for name in self._numeric:
            feeds[name] = features[name].to_numpy(dtype=np.float64).reshape(-1, 1)
        for name in self._categorical:
            values = features[name].to_numpy(dtype=object)
            missing = pd.isna(values)
            token = self.missing_tokens[name]
            feeds[name] = np.array(
                [token if gone else value for value, gone in zip(values, missing, strict=True)],
                dtype=object,
            ).reshape(-1, 1)
        return self._run(feeds)

    def predict_arrow(self, columns: dict[str, Any]) -> np.ndarray:
        """Score Arrow columns (batch scoring): numbers as integers or floats, categories as text; null = missing.

        The feeds equal ``predict_features(coerce_features(frame))`` for the same rows: numbers as
        float64 with NaN, each category its own text, a missing one the imputer's token. Each
        distinct category becomes one Python string, spread by its dictionary index (no string
        per row).
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        feeds: dict[str, np.ndarray] = {}
        for name in self._numeric:
            values = columns[name].cast(pa.float64()).to_numpy(zero_copy_only=False)
            feeds[name] = values.reshape(-1, 1)
        for name in self._categorical:
            encoded = pc.dictionary_encode(columns[name])
            texts = np.array([*encoded.dictionary.to_pylist(), self.missing_tokens[name]], dtype=object)
            indices = pc.fill_null(encoded.indices, len(texts) - 1).to_numpy(zero_copy_only=False)
            feeds[name] = texts[indices].reshape(-1, 1)
        return self._run(feeds)


def open_compiled(
    model_dir: Path, meta: dict[str, Any], contract: DataContract, threads: int = 1
) -> tuple[OnnxEngine | None, str]:
    """The compiled engine of a model directory, or None and why it cannot serve."""
    block = meta.get(METADATA_KEY)
    if not block:
        return None, "the model version has no compiled artifact (registered before compilation existed)"
    if not block.get("attached"):
        return None, f"the compiled artifact was not attached at registration: {block.get('reason')}"
    path = model_dir / block.get("path", ONNX_PATH)
    if not path.is_file():
        return None, f"the metadata names a compiled artifact but {path} is missing"
    data = path.read_bytes()
    if sha256_of(data) != block.get("sha256"):
        return None, f"{path} does not match the sha256 recorded at registration"
    tokens = block.get("missing_tokens") or {}
    absent = [f.name for f in contract.features if f.is_categorical and f.name not in tokens]
    if absent:
        return None, f"the compiled metadata has no missing-value token for {absent}"
    try:
        session = session_for(data, threads)
    except Exception as exc:  # a corrupt file or an onnxruntime that lacks an operator
        return None, f"onnxruntime cannot open {path}: {exc}"
    return OnnxEngine(session, contract, dict(tokens)), (
        f"compiled artifact passed the parity gate at registration "
        f"(max |dp| {block.get('max_abs_diff')}, {block.get('label_flips')} label flips "
        f"over {block.get('rows')} rows)"
    )
