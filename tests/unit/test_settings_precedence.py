"""Settings: one precedence (argument > environment > user file > shipped file > default), strict keys.

Expected values are literals written here, never read back
from the code under test.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import yaml

from mlstack.core.contract import ContractError, DataContract
from mlstack.core.settings import ConfigError, Settings, TrainingConfig, load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("MLSTACK_"):
            monkeypatch.delenv(name)
    return monkeypatch


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


# (setting, dotted path, env var, argument value, env value, file value, shipped value, default)
CASES = [
    ("experiment", "MLSTACK_EXPERIMENT", "arg-exp", "env-exp", "file-exp", "shipped-exp", "mlstack"),
    ("tracking_uri", "MLSTACK_TRACKING_URI", "http://arg", "http://env", "http://file", "http://ship", None),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize(
    "layers",
    list(itertools.product([True, False], repeat=4)),
    ids=lambda v: "".join("AEFS"[i] if x else "-" for i, x in enumerate(v)),
)
def test_precedence_matrix(case, layers, clean_env, tmp_path):
    """Every combination of argument × environment × user file × shipped file: the highest present wins."""
    key, env, arg_value, env_value, file_value, shipped_value, default = case
    use_arg, use_env, use_file, use_shipped = layers
    overrides = {key: arg_value} if use_arg else {}
    if use_env:
        clean_env.setenv(env, env_value)
    user = _write(tmp_path / "user.yaml", {key: file_value}) if use_file else None
    shipped = _write(tmp_path / "shipped.yaml", {key: shipped_value}) if use_shipped else None
    expected = next(
        (
            value
            for present, value in zip(layers, (arg_value, env_value, file_value, shipped_value), strict=True)
            if present
        ),
        default,
    )
    assert getattr(load_settings(user, shipped=shipped, **overrides), key) == expected


def test_explicit_constructor_argument_beats_environment(clean_env):
    """``Settings(home=X)`` is X even when MLSTACK_HOME says otherwise."""
    clean_env.setenv("MLSTACK_HOME", "/from/env")
    assert Settings(home=Path("/explicit")).home == Path("/explicit")
    assert load_settings(home=Path("/explicit")).home == Path("/explicit")


def test_nested_argument_beats_nested_environment(clean_env):
    clean_env.setenv("MLSTACK_TRAINING__SEED", "7")
    assert load_settings(training={"seed": 11}).training.seed == 11
    assert load_settings().training.seed == 7


def test_user_config_env_var_is_the_user_file(clean_env, tmp_path):
    user = _write(tmp_path / "u.yaml", {"experiment": "from-env-file"})
    clean_env.setenv("MLSTACK_CONFIG", str(user))
    assert load_settings().experiment == "from-env-file"
    explicit = _write(tmp_path / "e.yaml", {"experiment": "explicit-file"})
    assert load_settings(explicit).experiment == "explicit-file"


# ---------------------------------------------------------------- typos are errors


@pytest.mark.parametrize(
    ("data", "key", "closest"),
    [
        ({"training": {"estimater": "random_forest"}}, "training.estimater", "training.estimator"),
        (
            {"training": {"gates": {"minimun": {"roc_auc": 0.9}}}},
            "training.gates.minimun",
            "training.gates.minimum",
        ),
        ({"trainig": {"seed": 1}}, "trainig", "training"),
        ({"serving": {"prot": 1}}, "serving.prot", "serving.port"),
    ],
)
def test_unknown_key_in_config_names_file_key_and_closest(data, key, closest, clean_env, tmp_path):
    path = _write(tmp_path / "typo.yaml", data)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert str(path) in message and repr(key) in message and repr(closest) in message


def test_unknown_environment_variable_is_an_error(clean_env):
    clean_env.setenv("MLSTACK_TRAINING__ESTIMATER", "random_forest")
    with pytest.raises(ConfigError, match="MLSTACK_TRAINING__ESTIMATER.*MLSTACK_TRAINING__ESTIMATOR"):
        load_settings()


def test_unknown_argument_is_an_error(clean_env):
    with pytest.raises(ConfigError, match="argument: unknown key 'tracking_url'.*'tracking_uri'"):
        load_settings(tracking_url="http://x")


def test_step_config_json_rejects_unknown_keys():
    """The JSON a KFP step receives is validated as strictly as the file it came from."""
    with pytest.raises(ValueError, match="estimater"):
        TrainingConfig.model_validate_json('{"estimater": "random_forest"}')


def test_contract_typo_names_file_key_and_closest(tmp_path):
    contract = yaml.safe_load((ROOT / "pipelines/config/loan_contract.yaml").read_text())
    contract["features"][0]["mni"] = 50
    path = _write(tmp_path / "contract.yaml", contract)
    with pytest.raises(ContractError) as caught:
        DataContract.load(path)
    message = str(caught.value)
    assert str(path) in message and "'features[0].mni'" in message and "'features[0].min'" in message


# ---------------------------------------------------------------- overlay, key by key


def test_user_file_overlays_shipped_defaults_key_by_key(clean_env, tmp_path):
    """One gate in a user file keeps the shipped file's other gates and other training keys."""
    shipped = ROOT / "pipelines/config/training.yaml"
    user = _write(tmp_path / "u.yaml", {"training": {"gates": {"minimum": {"roc_auc": 0.8}}}})
    settings = load_settings(user, shipped=shipped)
    gates = settings.training.gates
    assert gates.minimum == {"roc_auc": 0.8, "pr_auc": 0.30}  # pr_auc from the shipped file
    assert gates.maximum == {"log_loss": 0.45, "brier": 0.15}  # the shipped file's, not the code's
    assert settings.training.threshold == 0.35 and settings.training.params == {"C": 0.5}


def test_pipeline_cli_layers_user_file_on_shipped(clean_env, tmp_path):
    from mlstack.cli.pipeline import _settings

    user = _write(tmp_path / "u.yaml", {"training": {"seed": 5}})
    settings = _settings(str(user))
    assert settings.training.seed == 5 and settings.training.threshold == 0.35


def test_config_show_reports_sources(clean_env, tmp_path):
    from mlstack.core.settings_doc import effective

    user = _write(tmp_path / "u.yaml", {"training": {"seed": 5}})
    clean_env.setenv("MLSTACK_EXPERIMENT", "e")
    rows = {
        key: (value, source)
        for key, value, source in effective(user, shipped=ROOT / "pipelines/config/training.yaml", home="/h")
    }
    assert rows["training.seed"] == (5, f"file {user}")
    assert rows["experiment"] == ("e", "MLSTACK_EXPERIMENT")
    assert rows["home"] == ("/h", "argument")
    assert rows["training.threshold"][1].startswith("shipped ")
    assert rows["serving.port"] == (8080, "default")


# ---------------------------------------------------------------- every variable in Settings


@pytest.mark.parametrize("level", ["info", "Debug", "WARNING"])
def test_log_level_any_case(level, clean_env):
    clean_env.setenv("MLSTACK_LOG_LEVEL", level)
    assert load_settings().log_level == level.upper()


def test_bad_log_level_is_one_config_error(clean_env):
    clean_env.setenv("MLSTACK_LOG_LEVEL", "loud")
    with pytest.raises(ConfigError, match="log_level"):
        load_settings()


def test_no_mlstack_variable_read_outside_settings():
    """Every MLSTACK_* variable is a Settings field: no os.environ/getenv read of one elsewhere."""
    offenders = []
    pattern = re.compile(r"(os\.environ(\.get)?\s*[\[(]\s*|getenv\(\s*)[\"']MLSTACK_")
    for folder in ("mlstack", "components", "pipelines", "serving", "monitoring"):
        for path in (ROOT / folder).rglob("*.py"):
            if pattern.search(path.read_text()):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_previously_undocumented_variables_are_fields(clean_env):
    names = {
        "MLSTACK_DEBUG": ("debug", "1", True),
        "MLSTACK_LOG_FORMAT": ("log_format", "text", "text"),
        "MLSTACK_ALLOW_DEFAULT_CONTRACT": ("allow_default_contract", "true", True),
        "MLSTACK_GIT_COMMIT": ("git_commit", "abc", "abc"),
        "MLSTACK_LOCK_SHA256": ("lock_sha256", "sha256:x", "sha256:x"),
        "MLSTACK_COMPONENT_IMAGE": ("component_image", "reg/img:1", "reg/img:1"),
        "MLSTACK_S3_ENDPOINT_URL": ("s3_endpoint_url", "http://minio:9000", "http://minio:9000"),
        "MLSTACK_MODEL_VERSION": ("model_version", "3", "3"),
    }
    for env, (_, text, _) in names.items():
        clean_env.setenv(env, text)
    settings = load_settings()
    for env, (field, _, expected) in names.items():
        assert getattr(settings, field) == expected, env


def test_s3_endpoint_comes_from_settings(clean_env):
    from mlstack.core import storage

    clean_env.setenv("MLSTACK_S3_ENDPOINT_URL", "http://minio.local:9000")
    assert storage.s3_endpoint() == "http://minio.local:9000"


def test_readme_lists_every_variable_as_the_model_renders_it():
    """docs/configuration.md's table is `mlstack config env`; regenerate it with that command when this fails."""
    from mlstack.core.settings_doc import README_END, README_START, env_table

    readme = (ROOT / "docs" / "configuration.md").read_text()
    assert README_START in readme and README_END in readme
    embedded = readme.split(README_START, 1)[1].split(README_END, 1)[0].strip()
    assert embedded == env_table().strip()
    for name in ("MLSTACK_LOG_LEVEL", "MLSTACK_DEBUG", "MLSTACK_S3_ENDPOINT_URL", "MLSTACK_TRAINING__SEED"):
        assert f"`{name}`" in embedded
