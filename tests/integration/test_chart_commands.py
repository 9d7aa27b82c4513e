"""The commands the chart runs exist, accept the flags it passes, and answer its probes.

Every image installs this project from uv.lock, so the project's .venv has the same executables;
running them here proves the chart's command lines without a container engine.
"""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys

import httpx
import pytest

from tests.conftest import free_port, stop, wait_for_http
from tests.fixtures.cluster import by_kind, containers_of, pod_specs, render_objects, values_file

# the one image (Dockerfile at the root); every container of it sets its command in the chart
OUR_IMAGES = {"mlstack"}


def our_containers(objects):
    for obj in objects:
        specs = [spec for _, spec in pod_specs(obj)]
        if obj["kind"] == "ClusterServingRuntime":
            specs.append(obj["spec"])
        for spec in specs:
            for c in containers_of(spec):
                repo = c["image"].rsplit("/", 1)[-1].split(":")[0].split("@")[0]
                if repo in OUR_IMAGES:
                    label = f"{obj['kind']}/{obj['metadata']['name']}/{c['name']}"
                    assert c.get("command"), (
                        f"{label}: the one image has no per-component entrypoint; set command"
                    )
                    yield label, c["command"] + c.get("args", [])


def command_lines(objects):
    return sorted({label: argv for label, argv in our_containers(objects)}.items())


def test_python_scripts_in_the_chart_compile(chart_kind):
    scripts = [(label, argv[2]) for label, argv in command_lines(chart_kind) if argv[:2] == ["python", "-c"]]
    assert scripts, "expected the MLflow auth-config and bucket scripts"
    for label, source in scripts:
        compile(source, label, "exec")


# rendered at collection so each command line is its own test case; without the built helm the
# module skips with render_objects' reason (and fails, as it does, under MLSTACK_REQUIRE_CONTROL_PLANE=1)
try:
    KIND_COMMANDS = [
        (label, argv)
        for label, argv in command_lines(render_objects(values_file("values-kind.yaml")))
        if argv[0] != "python"
    ]
except pytest.skip.Exception as no_helm:
    pytest.skip(str(no_helm), allow_module_level=True)


@pytest.mark.parametrize(
    ("label", "argv"), [pytest.param(label, argv, id=label) for label, argv in KIND_COMMANDS]
)
def test_command_accepts_every_flag_the_chart_passes(label, argv, venv_bin):
    executable = venv_bin / argv[0]
    assert executable.exists(), f"{argv[0]} is not installed by uv.lock (the image would not have it)"
    # sub-command words come before the first flag; positional values (model names) are not words
    words = []
    for token in argv[1:]:
        if token.startswith("-") or (words and argv[0] == "kubectl-model"):
            break
        words.append(token)
    proc = subprocess.run(
        [str(executable), *words, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    output = proc.stdout + proc.stderr
    # a missing sub-command ("No such command") is the regression this test exists for: a failure
    if proc.returncode != 0:
        pytest.fail(f"`{argv[0]} {' '.join(words)} --help` failed:\n{output[-2000:]}")
    flags = {token.split("=")[0] for token in argv[1:] if re.match(r"--[a-z]", token)}
    missing = [
        flag for flag in sorted(flags) if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", output)
    ]
    assert not missing, f"{label}: `{' '.join(argv)}` uses flags its --help does not list: {missing}"


def run_init_script(chart_kind, tmp_path):
    """Run the MLflow pod's auth-config init container as Kubernetes would (env from the Secret)."""
    deployment = next(
        d for d in by_kind(chart_kind, "Deployment") if d["metadata"]["name"].endswith("-mlflow")
    )
    (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
    env = {e["name"]: e.get("value", "") for e in init["env"]}
    env.update(PGUSER="mlflow", PGPASSWORD="from-the-secret")
    script = init["args"][0].replace("/auth/basic_auth.ini", str(tmp_path / "basic_auth.ini"))
    subprocess.run([sys.executable, "-c", script], env={**os.environ, **env}, check=True, timeout=60)
    config = configparser.ConfigParser()
    config.read(tmp_path / "basic_auth.ini")
    return deployment, config


def test_mlflow_auth_init_writes_the_postgres_uri_from_the_secret(chart_kind, tmp_path):
    _, config = run_init_script(chart_kind, tmp_path)
    assert (
        config["mlflow"]["database_uri"]
        == "postgresql://mlflow:from-the-secret@mlstack-postgres.mlstack.svc:5432/mlflow_auth"
    )
    assert config["mlflow"]["default_permission"] == "READ"


@pytest.mark.timeout(600)
def test_mlflow_as_the_chart_runs_it_requires_auth_and_answers_its_probe(chart_kind, tmp_path, venv_bin):
    """The chart's mlflow command line, with local SQLite and a directory in place of Postgres and S3."""
    deployment, config = run_init_script(chart_kind, tmp_path)
    config["mlflow"]["database_uri"] = f"sqlite:///{tmp_path / 'auth.db'}"
    with open(tmp_path / "basic_auth.ini", "w") as handle:
        config.write(handle)
    c = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "mlflow")
    args = list(c["args"])
    port = free_port()
    replace = {
        "--backend-store-uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--artifacts-destination": str(tmp_path / "artifacts"),
        "--host": "127.0.0.1",
        "--port": str(port),
    }
    for flag, value in replace.items():
        args[args.index(flag) + 1] = value
    env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
    env.update(
        MLFLOW_AUTH_CONFIG_PATH=str(tmp_path / "basic_auth.ini"),
        MLFLOW_AUTH_ADMIN_USERNAME="admin",
        MLFLOW_AUTH_ADMIN_PASSWORD="a-generated-password-48-hex",
        MLFLOW_FLASK_SERVER_SECRET_KEY="flask-secret",
        HOME=str(tmp_path),
        MLSTACK_HOME=str(tmp_path / "home"),
    )
    for key in ("MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "MLSTACK_S3_ENDPOINT_URL"):
        env.pop(key, None)
    process = subprocess.Popen(
        [str(venv_bin / "mlflow"), *args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        client = httpx.Client(timeout=90)  # the first authenticated calls build the auth tables
        base = f"http://127.0.0.1:{port}"
        probe = c["readinessProbe"]["httpGet"]["path"]
        wait_for_http(f"{base}{probe}", timeout=480, process=process)
        assert client.get(f"{base}{probe}").status_code == 200, (
            "the probe path must answer without credentials"
        )
        search = f"{base}/api/2.0/mlflow/experiments/search?max_results=1"
        assert client.get(search).status_code == 401, "authentication must be on"
        assert client.get(search, auth=("admin", "a-generated-password-48-hex")).status_code == 200
        # in-cluster clients use the Service name as Host; MLflow's host check must let them in
        # (health endpoints skip that check, so ask the API)
        admin = ("admin", "a-generated-password-48-hex")
        in_cluster = client.get(search, auth=admin, headers={"Host": f"mlstack-mlflow.mlstack.svc:{port}"})
        assert in_cluster.status_code == 200
        assert client.get(search, auth=admin, headers={"Host": "attacker.example"}).status_code == 403
    finally:
        stop(process, timeout=30)


@pytest.mark.timeout(600)
def test_evidently_ui_as_the_chart_runs_it_answers_its_probe(chart_kind, tmp_path, venv_bin):
    ui = next(d for d in by_kind(chart_kind, "Deployment") if d["metadata"]["name"].endswith("-evidently"))
    c = ui["spec"]["template"]["spec"]["containers"][0]
    args = list(c["args"])
    port = free_port()
    args[args.index("--workspace") + 1] = str(tmp_path / "workspace")
    args[args.index("--host") + 1] = "127.0.0.1"
    args[args.index("--port") + 1] = str(port)
    env = {**os.environ, **{e["name"]: e["value"] for e in c["env"] if "value" in e}, "HOME": str(tmp_path)}
    process = subprocess.Popen(
        [str(venv_bin / c["command"][0]), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        client = httpx.Client(timeout=90)
        probe = c["readinessProbe"]["httpGet"]["path"]
        wait_for_http(f"http://127.0.0.1:{port}{probe}", timeout=480, process=process)
        assert client.get(f"http://127.0.0.1:{port}{probe}").status_code == 200
    finally:
        stop(process, timeout=30)
