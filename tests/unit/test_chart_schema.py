"""values.schema.json: good values pass, bad values fail with a message that names the field."""

from __future__ import annotations

import copy

import pytest
from helm_python import Chart
from helm_python.errors import HelmError

from tests.fixtures.cluster import CHART, render


@pytest.fixture(scope="module")
def chart():
    with Chart.load(CHART) as loaded:
        yield loaded


def model(**overrides):
    base = {
        "name": "loan-default",
        "storageUri": "s3://mlstack/models/loan-default/1",
        "modelVersion": "1",
        "minReplicas": 2,
        "maxReplicas": 4,
    }
    return {**base, **overrides}


BAD_VALUES = [
    ({"serving": {"models": [model(name="Fraud_Model")]}}, "/serving/models/0/name"),
    ({"serving": {"models": [model(minReplicas=1)]}}, "/serving/models/0/minReplicas"),
    ({"serving": {"models": [model(storageUri="/local/dir")]}}, "/serving/models/0/storageUri"),
    (
        {
            "serving": {
                "models": [
                    model(canary={"storageUri": "s3://b/m/2", "modelVersion": "2", "trafficPercent": 150})
                ]
            }
        },
        "trafficPercent",
    ),
    (
        {"serving": {"models": [model(canary={"storageUri": "s3://b/m/2", "trafficPercent": 10})]}},
        "modelVersion",
    ),
    ({"serving": {"models": []}}, "/serving/models"),
    ({"serving": {"models": [model(replicas=3)]}}, "replicas"),
    ({"drift": {"schedule": "every 15 minutes"}}, "/drift/schedule"),
    ({"drift": {"window": "an hour"}}, "/drift/window"),
    ({"drift": {"backoffLimit": -1}}, "/drift/backoffLimit"),
    ({"sink": {"replicas": 1}}, "/sink/replicas"),
    ({"sink": {"store": "/var/payloads"}}, "/sink/store"),
    (
        {
            "images": {
                "mlstack": {
                    "repository": "mlstack",
                    "tag": "dev",
                    "digest": "sha256:abc",
                    "pullPolicy": "IfNotPresent",
                }
            }
        },
        "/images/mlstack/digest",
    ),
    (
        {"images": {"mlstack": {"repository": "mlstack", "tag": "dev", "pullPolicy": "Sometimes"}}},
        "/images/mlstack/pullPolicy",
    ),
    (
        {"mlflow": {"auth": {"secretName": "mlstack-mlflow-auth", "defaultPermission": "ADMIN"}}},
        "/mlflow/auth/defaultPermission",
    ),
    (
        {
            "mlflow": {
                "resources": {
                    "requests": {"cpu": "lots", "memory": "1Gi"},
                    "limits": {"cpu": "1", "memory": "1Gi"},
                }
            }
        },
        "/mlflow/resources/requests/cpu",
    ),
    ({"s3": {"secretName": "Not A Name"}}, "/s3/secretName"),
    ({"s3": {"endpoint": "seaweedfs:8333"}}, "/s3/endpoint"),
    ({"postgres": {"password": "hunter2"}}, "password"),
    ({"networkPolicy": {"enabled": "yes"}}, "/networkPolicy/enabled"),
    ({"canaryAnalysis": {"schedule": "*/10 * *"}}, "/canaryAnalysis/schedule"),
]


@pytest.mark.parametrize(("values", "field"), BAD_VALUES, ids=[f for _, f in BAD_VALUES])
def test_bad_values_are_rejected_naming_the_field(chart, default_values, values, field):
    merged = chart.merge_values(values)
    with pytest.raises(HelmError) as caught:
        chart.validate_schema(merged)
    assert field in str(caught.value), str(caught.value)
    # rendering (what `helm upgrade --install` does) refuses the same values
    with pytest.raises(HelmError, match="schema"):
        render(values)


def test_default_and_kind_values_pass(chart, kind_values):
    chart.validate_schema(chart.merge_values({}))
    chart.validate_schema(chart.merge_values(kind_values))


def test_a_canary_is_accepted(chart, default_values):
    values = copy.deepcopy(default_values)
    values["serving"]["models"][0]["canary"] = {
        "storageUri": "s3://mlstack/models/loan-default/2",
        "modelVersion": "2",
        "trafficPercent": 10,
    }
    chart.validate_schema(chart.merge_values(values))


def test_schema_has_no_credential_fields(chart):
    """Passwords can only arrive as Secret names: the schema rejects any other key (see 'postgres.password')."""
    text = str(chart.schema).lower()
    assert "password" not in text and "accesskey" not in text
