import pandas as pd
import pytest

from mlstack.core.contract import ContractError, DataContract, infer_contract
from mlstack.core.generator import generate, loan_contract
from mlstack.core.validation import row_reasons, validate


def test_infer_contract_from_foreign_table_round_trips_through_yaml():
    frame = pd.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "height": [1.5, 1.8, None, 1.7],
            "rooms": [1, 2, 3, 4],
            "color": ["red", "blue", "red", "green"],
            "churned": ["yes", "no", "no", "no"],
        }
    )
    contract = infer_contract(frame, target="churned", id_column="id")
    assert contract.feature_names == ["height", "rooms", "color"]
    assert contract.feature("height").nullable and not contract.feature("rooms").nullable
    assert contract.feature("rooms").type == "integer"
    assert contract.feature("color").categories == ["blue", "green", "red"]
    assert contract.target.positive == "yes"  # the minority class is the one to detect
    again = DataContract.from_yaml(contract.to_yaml())
    assert again == contract
    assert validate(frame, again).passed


def test_infer_contract_rejects_non_binary_target():
    frame = pd.DataFrame({"x": [1, 2, 3], "y": [0, 1, 2]})
    with pytest.raises(ContractError, match="exactly two classes"):
        infer_contract(frame, target="y")


def test_contract_rejects_duplicate_feature_names():
    with pytest.raises(ContractError, match="unique"):
        DataContract.from_yaml(
            "target: {name: y}\nfeatures:\n- {name: a, type: numeric}\n- {name: a, type: numeric}\n"
        )


def test_validation_names_column_and_rule():
    frame = generate(1000, seed=3)
    frame.loc[:99, "credit_score"] = 900  # 10% above max
    frame = frame.drop(columns=["region"])
    report = validate(frame, loan_contract(), tolerance=0.05)
    assert not report.passed
    failed = {(v.column, v.rule) for v in report.failures}
    assert failed == {("credit_score", "above_max"), ("region", "missing_column")}
    assert "credit_score" in report.summary() and "850" in report.summary()


def test_validation_tolerates_small_share_and_flags_wrong_type():
    frame = generate(1000, seed=4)
    frame.loc[:4, "age"] = 150  # 0.5% out of range
    assert validate(frame, loan_contract(), tolerance=0.01).passed
    frame["annual_income"] = frame["annual_income"].astype(str)
    frame.loc[7, "annual_income"] = "lots"
    report = validate(frame, loan_contract(), tolerance=0.01)
    # numbers sent as text are numbers; the one "lots" is text where a number belongs (only that
    # row counts, not the whole column)
    assert [(v.column, v.rule) for v in report.failures] == [("annual_income", "not_a_number")]


def test_row_reasons_flags_exactly_the_bad_rows():
    frame = generate(200, seed=5)
    frame.loc[3, "loan_purpose"] = "yacht"
    frame.loc[8, "age"] = None
    frame.loc[8, "debt_to_income"] = -1
    reasons = row_reasons(frame, loan_contract())
    bad = reasons[reasons != ""]
    assert list(bad.index) == [3, 8]
    assert "loan_purpose" in bad[3] and "categories" in bad[3]
    assert "age: missing value" in bad[8] and "debt_to_income: value below the allowed minimum" in bad[8]
