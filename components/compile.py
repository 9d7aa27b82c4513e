"""Registration's compile step: export the fitted pipeline to ONNX and keep it only if it agrees.

``compile_model`` exports with skl2onnx (float64 converters in ``mlstack.components.onnx_converters``),
scores the evaluation set with the pipeline and with onnxruntime, and passes when the label flips
at the model's threshold and the largest |Δp| are within ``CompileConfig``. The result carries the
ONNX bytes only when it passed; its ``metadata`` block goes into the MLmodel file (what the
server checks, ``mlstack.core.compiled``) and its ``tags`` onto the model version either way.
An export that fails is a result too (attached = False, reason), never an exception: the version
is then served by scikit-learn and says why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlstack.core.compiled import METADATA_KEY, ONNX_PATH, OnnxEngine, session_for, sha256_of
from mlstack.core.contract import DataContract
from mlstack.core.model import coerce_features
from mlstack.core.settings import CompileConfig

log = logging.getLogger(__name__)

# ONNX opset 18 and ai.onnx.ml 3 (float64 tree attributes); onnxruntime 1.32 runs both
TARGET_OPSET = {"": 18, "ai.onnx.ml": 3}


@dataclass
class CompileResult:
    attached: bool
    reason: str
    onnx: bytes | None = None
    measured: dict[str, Any] = field(default_factory=dict)

    @property
    def metadata(self) -> dict[str, Any]:
        """The MLmodel metadata block (``mlstack_compiled``) the server reads back."""
        block: dict[str, Any] = {"attached": self.attached, "reason": self.reason, **self.measured}
        if self.attached and self.onnx is not None:
            block.update({"format": "onnx", "path": ONNX_PATH, "sha256": sha256_of(self.onnx)})
        return {METADATA_KEY: block}

    @property
    def tags(self) -> dict[str, str]:
        """Model-version tags: which engine the version can use and the measured difference."""
        tags = {"compiled_engine": "onnx" if self.attached else "none", "compiled_reason": self.reason[:500]}
        for key in ("rows", "max_abs_diff", "label_flips", "threshold"):
            if key in self.measured:
                tags[f"compiled_{key}"] = str(self.measured[key])
        return tags


def missing_tokens(pipeline, contract: DataContract) -> dict[str, str]:
    """For each categorical feature, the string its constant SimpleImputer fills a missing value with."""
    from sklearn.impute import SimpleImputer

    preprocess = pipeline.steps[0][1]
    tokens: dict[str, str] = {}
    for _name, transformer, columns in getattr(preprocess, "transformers_", []):
        steps = transformer.steps if hasattr(transformer, "steps") else [(None, transformer)]
        imputer = steps[0][1]
        if isinstance(imputer, SimpleImputer) and imputer.strategy == "constant":
            for column in columns:
                tokens[column] = str(imputer.fill_value)
    absent = [name for name in contract.categorical_features if name not in tokens]
    if absent:
        raise NotImplementedError(f"categorical features without a constant imputer first: {absent}")
    return tokens


def export(pipeline, contract: DataContract) -> bytes:
    """The pipeline as ONNX bytes: one [N, 1] input per feature, probabilities as float64."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType

    from mlstack.components.onnx_converters import register

    register()
    inputs = [
        (f.name, StringTensorType([None, 1]) if f.is_categorical else DoubleTensorType([None, 1]))
        for f in contract.features
    ]
    estimator = pipeline.steps[-1][1]
    model = convert_sklearn(
        pipeline,
        initial_types=inputs,
        target_opset=TARGET_OPSET,
        options={id(estimator): {"zipmap": False}},
    )
    return model.SerializeToString()


def measure(pipeline, engine: OnnxEngine, features: pd.DataFrame, threshold: float) -> dict[str, Any]:
    """Both engines on the same coerced rows: rows, max |Δp| and label flips at ``threshold``."""
    expected = pipeline.predict_proba(features)[:, 1]
    got = engine.predict_features(features)
    flips = int(np.count_nonzero((expected >= threshold) != (got >= threshold)))
    return {
        "rows": len(features),
        "max_abs_diff": float(np.max(np.abs(expected - got))) if len(features) else 0.0,
        "label_flips": flips,
        "threshold": threshold,
    }


def compile_model(
    pipeline, eval_frame: pd.DataFrame | None, contract: DataContract, threshold: float, config: CompileConfig
) -> CompileResult:
    """Export, score the evaluation set with both engines, attach only within the gate."""
    if not config.enabled:
        return CompileResult(False, "compilation is off (training.compile.enabled = false)")
    if eval_frame is None or len(eval_frame) == 0:
        return CompileResult(False, "no evaluation set to check the compiled artifact against")
    versions = {"skl2onnx": version("skl2onnx"), "onnxruntime": version("onnxruntime")}
    try:
        onnx_bytes = export(pipeline, contract)
        engine = OnnxEngine(session_for(onnx_bytes), contract, missing_tokens(pipeline, contract))
        measured = {**measure(pipeline, engine, coerce_features(eval_frame, contract), threshold), **versions}
        measured["missing_tokens"] = engine.missing_tokens
    except Exception as exc:  # an estimator or step without a converter, an ORT kernel missing
        log.warning("ONNX export failed, the version will be served by scikit-learn: %s", exc)
        return CompileResult(False, f"export failed: {type(exc).__name__}: {exc}", measured=versions)
    problems = []
    if measured["label_flips"] > config.max_label_flips:
        problems.append(f"{measured['label_flips']} label flips > {config.max_label_flips}")
    if not measured["max_abs_diff"] <= config.max_abs_diff:  # NaN fails too
        problems.append(f"max |dp| {measured['max_abs_diff']:.3g} > {config.max_abs_diff:g}")
    if problems:
        reason = f"parity gate failed on {measured['rows']} evaluation rows: " + "; ".join(problems)
        log.warning("%s; the version will be served by scikit-learn", reason)
        return CompileResult(False, reason, measured=measured)
    reason = (
        f"parity gate passed on {measured['rows']} evaluation rows "
        f"(max |dp| {measured['max_abs_diff']:.3g} <= {config.max_abs_diff:g}, "
        f"{measured['label_flips']} label flips <= {config.max_label_flips})"
    )
    log.info("%s", reason)
    return CompileResult(True, reason, onnx_bytes, measured)


def save_model_dir(
    pipeline,
    path: Path,
    contract: DataContract,
    threshold: float,
    eval_frame: pd.DataFrame | None,
    config: CompileConfig,
) -> CompileResult:
    """Write an mlstack model directory (what KServe mounts) with the compiled artifact if it passed.

    The same MLmodel metadata and ``compiled/`` layout registration produces, without a registry:
    for tests, the bench and ``mlflow models serve``.
    """
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from mlstack.components.register import model_requirements
    from mlstack.core.model import metadata_for

    result = compile_model(pipeline, eval_frame, contract, threshold, config)
    example = coerce_features(eval_frame.head(5), contract) if eval_frame is not None else None
    mlflow.sklearn.save_model(
        pipeline,
        str(path),
        signature=None
        if example is None
        else infer_signature(example, pipeline.predict_proba(example)[:, 1]),
        metadata={**metadata_for(contract, threshold), **result.metadata},
        serialization_format="cloudpickle",
        pip_requirements=model_requirements(),  # not inferred: that reloads the model in a subprocess
    )
    if result.onnx is not None:
        target = Path(path) / ONNX_PATH
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(result.onnx)
    return result
