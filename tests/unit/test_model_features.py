"""``coerce_features`` builds the frame every prediction sees: it must equal the plain-pandas definition."""

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlstack.core.contract import DataContract
from mlstack.core.generator import generate, loan_contract
from mlstack.core.model import coerce_features


def pandas_definition(frame: pd.DataFrame, contract: DataContract) -> pd.DataFrame:
    """The rule spelled with pandas operations: categorical -> str with missing as NaN; numeric ->
    float with anything unparseable as NaN (the implementation before the NumPy rewrite)."""
    out = {}
    for feature in contract.features:
        column = frame[feature.name]
        if feature.is_categorical:
            as_object = column.astype(object)
            out[feature.name] = as_object.where(as_object.isna(), as_object.astype(str)).where(
                as_object.notna(), np.nan
            )
        else:
            out[feature.name] = pd.to_numeric(column, errors="coerce").astype(float)
    return pd.DataFrame(out, index=frame.index)


CONTRACT = DataContract.model_validate(
    {
        "target": {"name": "y"},
        "features": [
            {"name": "num", "type": "numeric", "nullable": True},
            {"name": "count", "type": "integer", "nullable": True},
            {"name": "cat", "type": "categorical", "nullable": True},
            {"name": "flag", "type": "boolean", "nullable": True},
        ],
    }
)

scalar = st.one_of(
    st.none(),
    st.just(float("nan")),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, width=64),
    st.text(max_size=5),
    st.sampled_from(["1.5", "7", "x", ""]),
)


def _column(values: list, kind: str) -> pd.Series:
    if kind == "float":
        return pd.Series([float(v) if isinstance(v, int | float) else np.nan for v in values], dtype=float)
    if kind == "int":
        return pd.Series([int(v) if isinstance(v, int) else 0 for v in values], dtype="int64")
    if kind == "nullable-int":
        return pd.Series([int(v) if isinstance(v, int) else None for v in values], dtype="Int64")
    if kind == "bool":
        return pd.Series([bool(v) for v in values], dtype=bool)
    return pd.Series(values, dtype=object)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(1, 6).flatmap(
        lambda n: st.tuples(
            *[st.lists(scalar, min_size=n, max_size=n) for _ in range(4)],
            *[st.sampled_from(["object", "float", "int", "nullable-int", "bool"]) for _ in range(4)],
        )
    )
)
def test_coerce_features_equals_the_pandas_definition(case):
    values, kinds = case[:4], case[4:]
    frame = pd.DataFrame(
        {f.name: _column(v, k) for f, v, k in zip(CONTRACT.features, values, kinds, strict=True)}
    )
    got, want = coerce_features(frame, CONTRACT), pandas_definition(frame, CONTRACT)
    pd.testing.assert_frame_equal(got, want)
    for name in ("cat", "flag"):  # assert_frame_equal treats None as NaN; scikit-learn's imputer does not
        assert got[name].map(repr).tolist() == want[name].map(repr).tolist()


def test_generated_data_with_missing_values_and_a_shuffled_index():
    contract = loan_contract()
    frame = generate(3000, seed=5).sample(frac=1.0, random_state=1)
    got = coerce_features(frame, contract)
    pd.testing.assert_frame_equal(got, pandas_definition(frame, contract))
    assert got.columns.tolist() == contract.feature_names
    assert got.isna().to_numpy().any()  # the generator's missing values stay missing
