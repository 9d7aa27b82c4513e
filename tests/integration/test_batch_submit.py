"""`mlstack batch submit`: the compiled pipeline and the recurring run as the KFP API receives them."""

from __future__ import annotations

import json
import sys

import pytest
import yaml

from mlstack.components.image import COMPONENT_IMAGE
from mlstack.pipelines.batch_scoring import PIPELINE_NAME, batch_scoring
from mlstack.pipelines.submit import compile_pipeline


def _run_cli(argv: list[str], monkeypatch, capsys) -> tuple[int, str, str]:
    from mlstack.cli.main import main

    monkeypatch.setattr(sys, "argv", ["mlstack", *argv])
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


def test_compiled_pipeline_has_both_steps_on_the_component_image(tmp_path):
    # the pipeline spec; the second document is the Kubernetes platform spec
    spec = next(yaml.safe_load_all(compile_pipeline(batch_scoring, tmp_path / "batch.yaml").read_text()))
    assert spec["pipelineInfo"]["name"] == PIPELINE_NAME == "mlstack-batch-scoring"
    executors = spec["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {COMPONENT_IMAGE}
    # no pip install at run time: the image has mlstack and kfp installed
    assert not any("pip install" in " ".join(e["container"]["command"]) for e in executors.values())
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"resolve-model-op", "score-batch-op"}
    assert all(task["cachingOptions"].get("enableCache", False) is False for task in tasks.values())
    assert set(spec["root"]["inputDefinitions"]["parameters"]) == {
        "model", "input_uri", "output_uri", "rejects_uri", "chunk_rows", "tracking_uri",
        "s3_secret", "mlflow_secret", "env_config_map",
    }  # fmt: skip


def test_submit_uploads_and_schedules(fake_kfp, mlstack_home, monkeypatch, capsys):
    url, api = fake_kfp
    argv = [
        "batch", "submit", "--host", url, "--model", "fraud@champion", "--input", "s3://data/nightly.parquet",
        "--output", "s3://scores/date={date}/predictions.parquet", "--schedule", "0 2 * * *",
        "--tracking-uri", "http://mlflow.mlstack:5000", "--json",
    ]  # fmt: skip
    code, out, err = _run_cli(argv, monkeypatch, capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["schedule"] == "0 0 2 * * *" and result["recurring_run_id"].startswith("recurring-")
    upload = next(r for r in api.requests if r["path"].endswith("/pipelines/upload"))
    assert upload["query"]["name"] == "mlstack-batch-scoring"
    assert b"mlstack-batch-scoring" in upload["body"] and b"score-batch" in upload["body"]
    (schedule,) = [json.loads(r["body"]) for r in api.requests if r["path"].endswith("/recurringruns")]
    assert schedule["trigger"]["cron_schedule"]["cron"] == "0 0 2 * * *"
    assert schedule["pipeline_version_reference"] == {
        "pipeline_id": result["pipeline_id"],
        "pipeline_version_id": result["version_id"],
    }
    assert schedule["experiment_id"] == api.experiments["batch-scoring"]  # settings batch.kfp_experiment
    assert schedule["runtime_config"]["parameters"] == {
        "model": "fraud@champion",
        "input_uri": "s3://data/nightly.parquet",
        "output_uri": "s3://scores/date={date}/predictions.parquet",
        "rejects_uri": "",
        "chunk_rows": 50000,
        "tracking_uri": "http://mlflow.mlstack:5000",
    }
    # a second submit adds a version to the same pipeline instead of failing on the name
    code, out, err = _run_cli(argv, monkeypatch, capsys)
    assert code == 0, err
    assert json.loads(out)["pipeline_id"] == result["pipeline_id"]
    assert sum(r["path"].endswith("/pipelines/upload") for r in api.requests) == 1
    assert sum(r["path"].endswith("/upload_version") for r in api.requests) == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--schedule": "every night"}, "is not a cron expression"),
        ({"--schedule": "0 2 * *"}, "is not a cron expression"),
        ({"--model": "fraud@"}, "NAME@ALIAS"),
        ({"--host": "kfp.local:8888"}, "must be an http(s):// URL"),
    ],
)
def test_submit_rejects_bad_arguments_before_calling_kfp(
    fake_kfp, mlstack_home, monkeypatch, capsys, change, message
):
    url, api = fake_kfp
    options = {
        "--host": url,
        "--model": "fraud",
        "--input": "s3://d/in.parquet",
        "--output": "s3://d/out.parquet",
    }
    options.update(change)
    code, _, err = _run_cli(
        ["batch", "submit", *[x for pair in options.items() for x in pair]], monkeypatch, capsys
    )
    assert code == 2
    assert err.strip().startswith("error: ") and message in err and "Traceback" not in err
    assert api.requests == []
