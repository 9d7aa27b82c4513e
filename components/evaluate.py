"""Step 4: score the evaluation set, compute metrics (overall and per slice), judge the gates."""

import hashlib
import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from mlstack.adapters.mlflow import Mlflow
from mlstack.components.train import encode_target
from mlstack.core.contract import DataContract
from mlstack.core.model import predict
from mlstack.core.settings import GateConfig

log = logging.getLogger(__name__)

# metrics where lower is better; every other metric is higher-is-better
LOWER_IS_BETTER = {"log_loss", "brier"}


@dataclass
class Evaluation:
    metrics: dict[str, float]
    slices: dict[str, dict[str, float]]
    predictions: np.ndarray
    probabilities: np.ndarray
    labels: np.ndarray

    @property
    def predictions_sha256(self) -> str:
        """Hash of the evaluation-set answers (0/1 and probability, in row order)."""
        digest = hashlib.sha256()
        digest.update(self.predictions.astype(np.int64).tobytes())
        digest.update(np.asarray(self.probabilities, dtype=np.float64).tobytes())
        return digest.hexdigest()


@dataclass
class Verdict:
    passed: bool
    reasons: list[str] = field(default_factory=list)


def score(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict[str, float]:
    """The headline metrics of a binary classifier at ``threshold``."""
    predictions = (probabilities >= threshold).astype(int)
    both_classes = len(np.unique(labels)) == 2
    return {
        "roc_auc": float(skm.roc_auc_score(labels, probabilities)) if both_classes else float("nan"),
        "pr_auc": float(skm.average_precision_score(labels, probabilities)) if both_classes else float("nan"),
        "log_loss": float(skm.log_loss(labels, probabilities, labels=[0, 1])),
        "brier": float(skm.brier_score_loss(labels, probabilities)),
        "f1": float(skm.f1_score(labels, predictions, zero_division=0)),
        "precision": float(skm.precision_score(labels, predictions, zero_division=0)),
        "recall": float(skm.recall_score(labels, predictions, zero_division=0)),
        "accuracy": float(skm.accuracy_score(labels, predictions)),
        "positive_rate": float(labels.mean()),
        "rows": float(len(labels)),
    }


def slice_feature_for(contract: DataContract, configured: str | None) -> str | None:
    """The feature to slice metrics by: the configured one (it must be a categorical contract
    feature), else the contract's categorical feature with the most categories, else none (off)."""
    if configured:
        if configured not in contract.feature_names:
            raise ValueError(
                f"training.slice_feature {configured!r} is not a feature of contract {contract.name!r}; "
                f"categorical features: {contract.categorical_features or 'none'} (or leave it unset)"
            )
        return configured
    candidates = [f for f in contract.features if f.is_categorical]
    if not candidates:
        return None
    return max(candidates, key=lambda f: len(f.categories or [])).name


def evaluate(
    pipeline, frame: pd.DataFrame, contract: DataContract, threshold: float, slice_feature: str | None = None
) -> Evaluation:
    """Score ``frame`` with the one prediction path and compute metrics, per slice too."""
    labels = encode_target(frame, contract).to_numpy()
    predictions, probabilities = predict(pipeline, frame, contract, threshold)
    slices: dict[str, dict[str, float]] = {}
    slice_feature = slice_feature_for(contract, slice_feature)
    if slice_feature:
        values = frame[slice_feature].astype(str).fillna("__missing__")
        for value in sorted(values.unique()):
            mask = (values == value).to_numpy()
            if mask.sum() >= 20:
                slices[f"{slice_feature}={value}"] = score(labels[mask], probabilities[mask], threshold)
    return Evaluation(score(labels, probabilities, threshold), slices, predictions, probabilities, labels)


def judge(
    metrics: dict[str, float],
    gates: GateConfig,
    champion: dict[str, float] | None,
    champion_problem: str | None = None,
) -> Verdict:
    """Apply the gates; the verdict lists every check, passed or not.

    ``champion`` None with no ``champion_problem`` means there is no champion yet (the regression
    gates do not apply); a ``champion_problem`` means they could not be evaluated: that fails.
    """
    reasons: list[str] = []
    passed = True
    for name, floor in gates.minimum.items():
        value = metrics.get(name, float("nan"))
        ok = bool(value >= floor)
        passed &= ok
        reasons.append(f"{name} {value:.4f} {'>=' if ok else '<'} minimum {floor}: {'ok' if ok else 'FAIL'}")
    for name, ceiling in gates.maximum.items():
        value = metrics.get(name, float("nan"))
        ok = bool(value <= ceiling)
        passed &= ok
        reasons.append(
            f"{name} {value:.4f} {'<=' if ok else '>'} maximum {ceiling}: {'ok' if ok else 'FAIL'}"
        )
    if champion_problem:
        passed = False
        reasons.append(f"regression gates could not be evaluated: {champion_problem}: FAIL")
    elif champion is None:
        reasons.append("no champion to compare with: regression gates skipped")
    else:
        for name, delta in gates.max_regression.items():
            new, old = metrics.get(name, float("nan")), champion.get(name, float("nan"))
            drop = (new - old) if name in LOWER_IS_BETTER else (old - new)
            ok = bool(drop <= delta)
            passed &= ok
            reasons.append(
                f"{name} {new:.4f} vs champion {old:.4f} (worse by {drop:+.4f}, allowed {delta}): "
                f"{'ok' if ok else 'FAIL'}"
            )
    return Verdict(passed=passed, reasons=reasons)


def champion_metrics(
    model_name: str, registry: Mlflow, frame: pd.DataFrame, contract: DataContract
) -> tuple[dict[str, float] | None, str | None]:
    """The current champion's metrics on the same evaluation set, or (None, why they are unknown).

    (None, None) only when the registry answers that there is no champion; any other failure
    (registry unreachable, 401, a champion that cannot score this data) is a problem, never "none".
    """
    from mlflow.exceptions import MlflowException

    where = registry.address.tracking_uri
    try:
        registry.client.get_model_version_by_alias(model_name, "champion")
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE") and "not found" in str(
            exc
        ):
            return None, None
        return None, f"cannot read the champion of {model_name} from {where}: {_first_line(exc)}"
    except Exception as exc:  # noqa: BLE001 - any other failure must fail the gate, not skip it
        return None, f"cannot read the champion of {model_name} from {where}: {_first_line(exc)}"
    try:
        champion = registry.load_model(f"{model_name}@champion")
        missing = [f for f in champion.feature_names if f not in frame.columns]
        if missing:
            return None, f"champion v{champion.version} needs columns this data lacks: {missing}"
        labels = encode_target(frame, contract).to_numpy()
        _, probabilities = predict(champion.pipeline, frame, champion.contract, champion.threshold)
        result = score(labels, probabilities, champion.threshold)
        result["version"] = float(champion.version)
        return result, None
    except Exception as exc:  # noqa: BLE001
        return None, f"cannot score the champion of {model_name}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0] if text else ''}"[:300]


def roc_points(
    labels: np.ndarray, probabilities: np.ndarray, max_points: int = 200
) -> tuple[list, list, list]:
    """The ROC curve thinned to at most ``max_points`` (the Kubeflow UI renders a list of points)."""
    fpr, tpr, thresholds = skm.roc_curve(labels, probabilities)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(max_points, len(fpr))).round().astype(int))
    thresholds = np.where(np.isfinite(thresholds), thresholds, 1.0)
    return fpr[keep].tolist(), tpr[keep].tolist(), thresholds[keep].tolist()


def render_model_card(model_name: str, config, summary: dict) -> str:
    """A Markdown model card: what was trained, how it scored, what the gates said."""
    gates = summary["gates"]
    lines = [
        f"# Model card: {model_name}",
        "",
        f"- estimator: `{config.estimator}`, params `{config.params}`, seed {config.seed}",
        f"- decision threshold: {config.threshold}",
        f"- gate verdict: **{'PASSED' if gates['passed'] else 'FAILED'}**",
        f"- evaluation predictions sha256: `{summary['predictions_sha256'][:16]}…`",
        "",
        "## Metrics (evaluation set)",
        "",
        "| metric | value | champion |",
        "|---|---|---|",
    ]
    champion = summary.get("champion_metrics") or {}
    for name, value in summary["metrics"].items():
        old = champion.get(name)
        lines.append(f"| {name} | {value:.4f} | {'' if old is None else f'{old:.4f}'} |")
    if summary.get("slices"):
        lines += ["", "## Per slice", "", "| slice | rows | roc_auc | pr_auc | f1 |", "|---|---|---|---|---|"]
        for name, values in summary["slices"].items():
            lines.append(
                f"| {name} | {int(values['rows'])} | {values['roc_auc']:.4f} | {values['pr_auc']:.4f} | {values['f1']:.4f} |"
            )
    lines += ["", "## Gates", ""] + [f"- {reason}" for reason in gates["reasons"]]
    return "\n".join(lines) + "\n"
