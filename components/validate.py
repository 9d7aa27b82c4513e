"""Step 2: validate the data against its contract; beyond the tolerance the pipeline stops."""

from mlstack.core.contract import DataContract
from mlstack.core.validation import ValidationReport, validate


def validate_dataset(frame, contract: DataContract, tolerance: float) -> ValidationReport:
    """Every contract rule on every column, target included."""
    return validate(frame, contract, tolerance=tolerance, require_target=True)
