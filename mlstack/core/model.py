"""How an mlstack model is stored in MLflow and loaded back: one format for serving, batch and monitoring.

A model is an MLflow scikit-learn model (a ``Pipeline`` of ColumnTransformer + estimator) whose
MLmodel ``metadata`` carries what a server needs beyond the weights:

- ``mlstack_contract``: the data contract (dict) the inputs are validated against;
- ``mlstack_threshold``: the decision threshold on the positive-class probability;
- ``mlstack_positive``: the raw target value that counts as positive.

Predictions are ``1`` for the positive class and ``0`` otherwise; probabilities are of the positive
class. ``predict`` below is the only prediction path: the pipeline's evaluation, the online
predictor and batch scoring all call it, so their answers are identical for the same rows.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from mlstack.core.contract import DataContract
from mlstack.core.errors import UsageError

if TYPE_CHECKING:  # pandas, MLflow and scikit-learn load on first use: the compiled server needs none
    import pandas as pd

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A fitted pipeline plus what is needed to validate inputs and turn scores into answers.

    ``pipeline`` is the scikit-learn pipeline; a model served by its compiled engine reads it from
    ``pipeline_dir`` only when something asks for it (MLflow + scikit-learn are most of a
    server's start-up, and the compiled engine never calls the pipeline).
    """

    _pipeline: Any
    contract: DataContract
    threshold: float
    name: str
    version: str
    # the onnxruntime engine when the version carries a compiled artifact that opened; else None
    compiled: Any = None
    engine_reason: str = "loaded without a model directory (scikit-learn)"
    pipeline_dir: Path | None = None

    @property
    def pipeline(self) -> Any:
        """The fitted scikit-learn pipeline (read from ``pipeline_dir`` on first use when deferred)."""
        if self._pipeline is None and self.pipeline_dir is not None:
            self._pipeline = _read_pipeline(self.pipeline_dir)
        return self._pipeline

    @property
    def feature_names(self) -> list[str]:
        return self.contract.feature_names

    @property
    def engine(self) -> str:
        """Which engine answers: ``onnx`` (the compiled artifact) or ``sklearn``."""
        return "onnx" if self.compiled is not None else "sklearn"

    def predict(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(0/1 predictions, probabilities) on the serving engine; ``predict`` below for sklearn."""
        if self.compiled is None:
            return predict(self.pipeline, frame, self.contract, self.threshold)
        proba = self.compiled.predict_features(coerce_features(frame, self.contract))
        return (proba >= self.threshold).astype(np.int64), proba


def metadata_for(contract: DataContract, threshold: float) -> dict[str, Any]:
    """The MLmodel metadata block that ``load`` reads back."""
    return {
        "mlstack_contract": contract.model_dump(exclude_none=True),
        "mlstack_threshold": float(threshold),
        "mlstack_positive": contract.target.positive,
    }


def coerce_features(frame: pd.DataFrame, contract: DataContract) -> pd.DataFrame:
    """Select the contract's features in contract order with the dtypes the pipeline was fit on.

    Categorical values become ``str`` (missing ones NaN), numeric ones float64 (unparseable ones
    NaN). Built from NumPy arrays, not pandas' ``where``/``astype`` chain, which cost most of a
    one-row prediction.
    """
    import pandas as pd

    out = {}
    for feature in contract.features:
        column = frame[feature.name]
        if feature.is_categorical:
            values = column.to_numpy(dtype=object)
            missing = pd.isna(values)
            out[feature.name] = np.array(
                [np.nan if gone else str(value) for value, gone in zip(values, missing, strict=True)],
                dtype=object,
            )
        elif isinstance(column.dtype, np.dtype) and column.dtype.kind in "biuf":
            out[feature.name] = column.to_numpy(dtype=float)
        else:
            out[feature.name] = pd.to_numeric(column, errors="coerce").astype(float).to_numpy()
    return pd.DataFrame(out, index=frame.index)


def predict(
    pipeline: Any, frame: pd.DataFrame, contract: DataContract, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return (0/1 predictions, positive-class probabilities) for rows that passed validation."""
    features = coerce_features(frame, contract)
    proba = pipeline.predict_proba(features)[:, 1]
    return (proba >= threshold).astype(np.int64), proba


def _read_pipeline(local: Path) -> Any:
    import mlflow.sklearn

    return mlflow.sklearn.load_model(str(local))


def _read_mlmodel(model_dir: Path) -> dict[str, Any]:
    mlmodel = model_dir / "MLmodel"
    if not mlmodel.is_file():
        raise UsageError(f"{model_dir} is not an MLflow model directory (no MLmodel file)")
    return yaml.safe_load(mlmodel.read_text()) or {}


def load(
    uri: str,
    name: str | None = None,
    version: str | None = None,
    engine: str = "auto",
) -> LoadedModel:
    """Load from a local MLflow model directory (a registered version: ``Mlflow.load_model``).

    The version is the ``version`` argument (KServe passes it) or ``unknown``. ``engine="auto"``
    opens the compiled artifact when the version has one that verifies (``mlstack.core.compiled``);
    ``"sklearn"`` never does. ``engine_reason`` says why the chosen engine serves. A directory
    served by its compiled engine is opened without importing MLflow or scikit-learn
    (``LoadedModel.pipeline`` reads the pipeline when first asked).
    """
    local = Path(uri)
    if not local.exists():
        raise UsageError(f"model directory {uri} does not exist")
    meta = _read_mlmodel(local).get("metadata") or {}
    if "mlstack_contract" not in meta:
        raise UsageError(f"model at {uri} has no mlstack_contract metadata; was it registered by mlstack?")
    contract = DataContract.model_validate(meta["mlstack_contract"])
    if engine not in ("auto", "sklearn"):
        raise UsageError(f"engine must be 'auto' or 'sklearn', not {engine!r}")
    if engine == "sklearn":
        compiled, reason = None, "engine 'sklearn' was asked for"
    else:
        from mlstack.core.compiled import open_compiled

        compiled, reason = open_compiled(local, meta, contract)
    return LoadedModel(
        None if compiled is not None else _read_pipeline(local),
        contract=contract,
        threshold=float(meta.get("mlstack_threshold", 0.5)),
        name=name or contract.name,
        version=str(version or "unknown"),
        compiled=compiled,
        engine_reason=reason,
        pipeline_dir=local,
    )


_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)(?:@(?P<alias>[A-Za-z0-9_\-]+)|/(?P<version>[0-9]+))?$")


def parse_model_spec(spec: str) -> tuple[str, str, str]:
    """The one parser of model references: ``NAME``, ``NAME@ALIAS``, ``NAME/VERSION``, each with or
    without ``models:/`` -> (name, alias, version), exactly one of alias/version set (NAME = NAME@champion).
    """
    body = spec.strip().removeprefix("models:/").strip("/")
    match = _SPEC.match(body)
    if not match:
        raise UsageError(
            f"model {spec!r} is not NAME, NAME@ALIAS or NAME/VERSION (e.g. fraud@champion, fraud/3)"
        )
    if match["version"]:
        return match["name"], "", match["version"]
    return match["name"], match["alias"] or "champion", ""


def model_uri(spec: str) -> str:
    """Any form ``parse_model_spec`` takes -> its ``models:/`` URI (``models:/NAME@champion`` for NAME)."""
    name, alias, version = parse_model_spec(spec)
    return f"models:/{name}/{version}" if version else f"models:/{name}@{alias}"
