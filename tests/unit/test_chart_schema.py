"""values.schema.json: good values pass, bad values fail with a message that names the field.

Checked by the real helm binary (``helm template`` validates values against the chart's schema
before rendering, as ``helm upgrade --install`` does).
"""

from __future__ import annotations

import copy

import pytest

from tests.fixtures.cluster import CHART, HelmFailed, render


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
def test_bad_values_are_rejected_naming_the_field(values, field):
    with pytest.raises(HelmFailed) as caught:
        render(values)
    assert "schema" in str(caught.value) and field in str(caught.value), str(caught.value)


def test_default_and_kind_values_pass(kind_values):
    assert render({}) and render(kind_values)


def test_a_canary_is_accepted(default_values):
    values = copy.deepcopy(default_values)
    values["serving"]["models"][0]["canary"] = {
        "storageUri": "s3://mlstack/models/loan-default/2",
        "modelVersion": "2",
        "trafficPercent": 10,
    }
    assert render(values)


def test_schema_has_no_credential_fields():
    """Passwords can only arrive as Secret names: the schema rejects any other key (see 'postgres.password')."""
    text = (CHART / "values.schema.json").read_text().lower()
    assert "password" not in text and "accesskey" not in text
