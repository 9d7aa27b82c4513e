"""The scoring core both servers share: contract validation, then the model's engine.

The engine is the compiled ONNX artifact when the version has one that verified at load
(``mlstack.core.compiled``), the scikit-learn pipeline otherwise; ``announce_engine`` logs which
and why at start.

``Scorer.score`` takes parsed columns and returns predictions; every client mistake becomes a
``RequestError``. The rule for a row is ``mlstack.core.validation.row_reasons`` (the same function
that judges training data). Calling it costs ~40 pandas operations per request, more than the model
itself for one row, so a plain-Python check compiled from the same contract runs first: when it says
every value conforms, ``row_reasons`` would return '' for every row (a property test holds the two
together) and is skipped; whenever it has any doubt, ``row_reasons`` decides and writes the message.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlstack.core.contract import DataContract, Feature
from mlstack.core.model import LoadedModel
from mlstack.serving.protocol import ParsedRequest, RequestError

if TYPE_CHECKING:  # pandas and row_reasons: the slow path only, imported on first use (see warm_up)
    import pandas as pd

log = logging.getLogger(__name__)


@dataclass
class Scored:
    predictions: list[int]
    probabilities: list[float] | None


def _fast_check(feature: Feature) -> Callable[[Any], bool]:
    """A predicate on one JSON scalar that is True only when row_reasons accepts the value."""
    lo = feature.min if feature.min is not None else -math.inf
    hi = feature.max if feature.max is not None else math.inf
    nullable = feature.nullable
    if feature.is_categorical:
        allowed = None if feature.categories is None else frozenset(feature.categories)
        if feature.type == "boolean":
            return lambda v: (
                (v is None and nullable)
                or (isinstance(v, str) and (allowed is None or v.capitalize() in allowed))
            )
        return lambda v: (
            (v is None and nullable) or (isinstance(v, str) and (allowed is None or v in allowed))
        )
    integer = feature.type == "integer"

    def numeric(v: Any) -> bool:
        if v is None:
            return nullable
        if isinstance(v, bool) or not isinstance(v, int | float):
            return False
        if not (lo <= v <= hi):  # NaN fails this comparison too
            return False
        return not integer or float(v).is_integer()

    return numeric


def _rule_of(text: str) -> str:
    """Name the rule behind one row_reasons message (the text is the contract's wording)."""
    from mlstack.core.validation import RULE_TEXT

    if text == "required column is missing":
        return "missing_feature"
    if text.startswith("expected "):
        return "wrong_type"
    for rule, phrase in RULE_TEXT.items():
        if text.startswith(phrase):
            return rule
    return "contract_violation"


def fast_sklearn(threads: int = 1) -> None:
    """Tune scikit-learn for one-row requests in a serving process.

    Skips the per-call parameter and finiteness checks (the contract already rejected infinite
    values and the pipeline is fixed, so they cannot change an answer) and caps OpenMP/BLAS
    threads: a one-row prediction gains nothing from a thread pool, and on a busy node waking one
    costs more than the prediction (HistGradientBoosting's OpenMP predict in particular). Scale out
    with ``--workers`` instead. The parity test compares this process's answers with offline
    ``predict`` bit for bit.
    """
    import sklearn
    from threadpoolctl import threadpool_limits

    sklearn.set_config(assume_finite=True, skip_parameter_validation=True)
    threadpool_limits(limits=threads)


def import_slow_path_in_background() -> threading.Thread:
    """Import what the full contract check needs (pandas, ``row_reasons``) beside a starting server.

    A conforming request never needs them on the compiled engine, so the server is ready without
    them; the first request that does need them then finds them imported instead of waiting ~0.5 s.
    """

    def run() -> None:
        import mlstack.core.validation  # noqa: F401  (pandas with it)

        gc.freeze()  # what the import made is permanent too (see run_lean)

    thread = threading.Thread(target=run, name="import-slow-path", daemon=True)
    thread.start()
    return thread


def announce_engine(model: LoadedModel) -> None:
    """Say at start which engine answers and why (never a silent switch to scikit-learn)."""
    if model.compiled is not None:
        log.info("model %s version %s: engine onnx; %s", model.name, model.version, model.engine_reason)
    else:
        log.warning(
            "model %s version %s: engine sklearn (no compiled artifact used): %s",
            model.name,
            model.version,
            model.engine_reason,
        )


class Scorer:
    """Validates parsed columns against a model's contract and scores them with the one predict path."""

    def __init__(self, model: LoadedModel):
        self.model = model
        self.contract: DataContract = model.contract
        self.features = model.contract.feature_names
        self._checks = [(f.name, _fast_check(f)) for f in model.contract.features]
        self.engine = model.engine
        announce_engine(model)

    def frame(self, columns: dict[str, list[Any]]) -> pd.DataFrame:
        """The request as a DataFrame; None marks a missing value (NaN in numeric columns)."""
        import pandas as pd

        return pd.DataFrame(columns, columns=self.features)

    def _conforms(self, columns: dict[str, list[Any]]) -> bool:
        return all(all(map(check, columns[name])) for name, check in self._checks)

    def conforms(self, columns: dict[str, list[Any]]) -> bool:
        """Whether the fast check accepts every value (``check`` would then return None)."""
        return self._conforms(columns)

    def row_conforms(self, row: list[Any]) -> bool:
        """The fast check on one row given as values in contract order."""
        return all(check(value) for (_, check), value in zip(self._checks, row, strict=True))

    def violations(self, frame: pd.DataFrame) -> list[dict[str, Any]]:
        """Every contract violation, one entry per (row, feature), from row_reasons."""
        from mlstack.core.validation import row_reasons

        found = []
        for row, reasons in enumerate(row_reasons(frame, self.contract)):
            if not reasons:
                continue
            for part in reasons.split("; "):
                name, _, text = part.partition(": ")
                found.append({"row": row, "field": name, "rule": _rule_of(text), "message": text})
        return found

    def check(self, parsed: ParsedRequest) -> pd.DataFrame | None:
        """Validate; None when the fast check passed (score the columns), else the accepted frame.

        Raises RequestError naming the first violation and listing them all.
        """
        if self._conforms(parsed.columns):
            return None
        frame = self.frame(parsed.columns)
        found = self.violations(frame)
        if found:
            first = found[0]
            raise RequestError(
                first["field"],
                first["rule"],
                f"{len(found)} contract violation(s); first: row {first['row']}, "
                f"feature {first['field']!r}: {first['message']}",
                details=found[:100],
            )
        return frame

    def probabilities(self, columns: dict[str, list[Any]], frame: pd.DataFrame | None = None) -> np.ndarray:
        """Positive-class probabilities on the model's engine (``frame`` as ``check`` returned it)."""
        if frame is None and self.model.compiled is not None:
            proba: np.ndarray = self.model.compiled.predict_columns(columns)  # LoadedModel.compiled is Any
            return proba
        return self.model.predict(self.frame(columns) if frame is None else frame)[1]

    def answer(self, proba: np.ndarray, want_probabilities: bool) -> Scored:
        predictions = (proba >= self.model.threshold).astype(np.int64)
        return Scored(
            predictions.tolist(), np.asarray(proba, dtype=float).tolist() if want_probabilities else None
        )

    def score(self, parsed: ParsedRequest) -> Scored:
        """Validate, then predict on the model's engine (``check`` + ``probabilities``)."""
        frame = self.check(parsed)
        return self.answer(self.probabilities(parsed.columns, frame), parsed.want_probabilities)
