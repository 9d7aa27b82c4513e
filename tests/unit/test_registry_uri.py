"""Registry locations KServe cannot fetch are mapped onto the MLflow server's artifacts destination.

Expected values follow MLflow 3.17.2's server (mlflow/server/handlers.py
``_get_proxied_run_artifact_destination_path``): the path of ``mlflow-artifacts:`` URIs, host ignored,
joined under ``--artifacts-destination``.
"""

from __future__ import annotations

import pytest

from mlstack.core.errors import UsageError
from mlstack.core.registry import fetchable_uri

DEST = "s3://mlstack/mlflow-artifacts"


@pytest.mark.parametrize(
    ("uri", "destination", "expected"),
    [
        ("mlflow-artifacts:/1/models/m-ab/artifacts", DEST, DEST + "/1/models/m-ab/artifacts"),
        ("mlflow-artifacts:///1/models/m-ab/artifacts", DEST + "/", DEST + "/1/models/m-ab/artifacts"),
        ("mlflow-artifacts://mlflow:5000/2/models/m-cd/artifacts", DEST, DEST + "/2/models/m-cd/artifacts"),
        ("s3://elsewhere/model", DEST, "s3://elsewhere/model"),  # already fetchable: untouched
        ("s3://elsewhere/model", None, "s3://elsewhere/model"),
    ],
)
def test_maps_proxied_locations_under_the_destination(uri, destination, expected):
    assert fetchable_uri(uri, destination) == expected


def test_a_proxied_location_without_a_destination_says_what_to_set():
    with pytest.raises(UsageError, match="serving.mlstack.io/artifacts-destination"):
        fetchable_uri("mlflow-artifacts:/1/models/m-ab/artifacts", None)


def test_a_destination_kserve_cannot_read_is_refused():
    with pytest.raises(UsageError, match="not a location KServe can fetch"):
        fetchable_uri("mlflow-artifacts:/1/models/m-ab/artifacts", "mlflow-artifacts:/again")
