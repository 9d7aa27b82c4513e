"""Pipeline step ``deploy`` (the KFP wrapper is ``components.deploy_op``): start a canary of the newly registered version through the KServe SDK.

Runs after registration, behind the quality gate, only when the pipeline's ``deploy`` parameter is on.
The patch itself is computed by ``mlstack.core.isvc`` (the same code the ``kubectl model`` plugin's
state machine uses for its start move), so a canary started by the pipeline and one started by hand
look identical and both can be promoted or rolled back by ``kubectl model``.
"""

from __future__ import annotations

import logging
import re

from mlstack.core import isvc
from mlstack.core.errors import CheckFailed, MlstackError

log = logging.getLogger(__name__)


def _sdk_object(data, type_name: str, configuration):
    """Turn JSON into kserve/kubernetes SDK model objects (partial objects allowed: it is a patch)."""
    import kserve.models
    import kubernetes.client.models

    if data is None:
        return None
    if match := re.fullmatch(r"list\[(.*)\]", type_name):
        return [_sdk_object(item, match.group(1), configuration) for item in data]
    if match := re.fullmatch(r"dict\(([^,]*), (.*)\)", type_name):
        return {key: _sdk_object(value, match.group(2), configuration) for key, value in data.items()}
    cls = getattr(kserve.models, type_name, None) or getattr(kubernetes.client.models, type_name, None)
    if cls is None or not hasattr(cls, "openapi_types"):
        return data  # primitives and types the SDK does not model
    by_key = {cls.attribute_map[attr]: attr for attr in cls.openapi_types}
    unknown = set(data) - set(by_key)
    if unknown:
        raise ValueError(f"{type_name} has no fields {sorted(unknown)}")
    kwargs = {by_key[k]: _sdk_object(v, cls.openapi_types[by_key[k]], configuration) for k, v in data.items()}
    return cls(**kwargs, local_vars_configuration=configuration)


def start_canary(
    inference_service: str,
    namespace: str,
    model_version: str,
    storage_uri: str,
    percent: int,
    kserve_client=None,
) -> dict:
    """Serve ``model_version`` from ``storage_uri`` to ``percent`` % of the service's traffic.

    Refuses (CheckFailed) while another canary is in flight or the service is still rolling out.
    Returns what was done, for the step's output.
    """
    import kserve
    from kserve import KServeClient

    client = kserve_client or KServeClient()
    try:
        current = client.get(inference_service, namespace=namespace)
    except RuntimeError as exc:  # KServeClient wraps every API error in RuntimeError
        raise MlstackError(f"cannot read InferenceService {namespace}/{inference_service}: {exc}") from exc
    if isvc.serving_version(current) == str(model_version):
        return {
            "inference_service": inference_service,
            "deployed": False,
            "reason": f"already serving v{model_version}",
        }
    warnings = isvc.check_start(current, str(model_version), percent)
    patch = isvc.start_canary_patch(current, str(model_version), storage_uri, percent)
    patch["apiVersion"], patch["kind"] = isvc.API_VERSION, "InferenceService"
    patch["metadata"].update(name=inference_service, namespace=namespace)
    patch["metadata"]["resourceVersion"] = current["metadata"].get("resourceVersion")
    configuration = kserve.Configuration()
    configuration.client_side_validation = False  # a merge patch is a partial object
    body = _sdk_object(patch, "V1beta1InferenceService", configuration)
    try:
        client.patch(inference_service, body, namespace=namespace)
    except RuntimeError as exc:
        raise CheckFailed(
            f"KServe refused the canary patch for {namespace}/{inference_service}: {exc}"
        ) from exc
    log.info("canary started: %s/%s v%s at %d%%", namespace, inference_service, model_version, percent)
    return {
        "inference_service": inference_service,
        "deployed": True,
        "namespace": namespace,
        "model_version": str(model_version),
        "storage_uri": storage_uri,
        "percent": int(percent),
        "champion_version": isvc.serving_version(current),
        "warnings": warnings,
    }


def deploy_step(
    deploy: bool,
    model_name: str,
    model_version: str,
    inference_service: str,
    namespace: str,
    storage_uri: str = "",
    percent: int = 0,
    kserve_client=None,
) -> dict:
    """The step's body: nothing when ``deploy`` is off; otherwise look up the location and start the canary."""
    if not deploy:
        return {"deployed": False, "reason": "deploy parameter is off"}
    from mlflow import MlflowClient

    from mlstack.core import registry
    from mlstack.core.settings import load_settings

    settings = load_settings()
    if not model_version:
        return {"deployed": False, "reason": "nothing was registered"}
    if not storage_uri:
        registry.configure(settings)
        storage_uri = registry.kserve_storage_uri(MlflowClient(), model_name, model_version)
    result = start_canary(
        inference_service,
        namespace,
        model_version,
        storage_uri,
        percent or settings.canary.initial_percent,
        kserve_client=kserve_client,
    )
    return result
