"""Pipeline step ``deploy`` (the KFP wrapper is ``deploy_canary_op`` in ``mlstack.components.training_ops``): the registered version served.

Runs after registration, behind the quality gate, when the pipeline's ``deploy`` parameter is on.
What to do is decided by ``mlstack.core.rollout.deploy``, the same module ``kubectl model`` and the
analysis CronJob use:

- no InferenceService yet (the first deploy): create it from the chart's template ConfigMap
  ``<name>-isvc-template`` serving this version at 100 %, and point the ``champion`` alias at it;
- a service serving another version: start a canary at ``percent`` (the ``challenger``);
- the version already served: nothing (a re-run pipeline is harmless).

Through the KServe SDK's client (its CustomObjectsApi and CoreV1Api), with the pod's ServiceAccount
(``pipeline-runner`` in KFP's namespace; the chart's Role ``<release>-pipeline-deployer`` lets it
read the template and get/create/patch InferenceServices in the release namespace).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import yaml

from mlstack.adapters.kube import server_message
from mlstack.core import isvc, rollout
from mlstack.core.errors import CheckFailed, MlstackError

log = logging.getLogger(__name__)

TEMPLATE_SUFFIX = "-isvc-template"
TEMPLATE_KEY = "inferenceservice.yaml"


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


def _current(client, name: str, namespace: str) -> dict | None:
    """The InferenceService, or None when it does not exist (KServeClient wraps errors in RuntimeError)."""
    from kubernetes.client.exceptions import ApiException

    try:
        return client.api_instance.get_namespaced_custom_object(
            isvc.GROUP, isvc.VERSION, namespace, isvc.PLURAL, name
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise MlstackError(
            f"cannot read InferenceService {namespace}/{name}: HTTP {exc.status} {exc.reason}"
        ) from exc


def _template(client, name: str, namespace: str) -> dict | None:
    """The chart's InferenceService template for ``name`` (None when the chart did not render one)."""
    from kubernetes.client.exceptions import ApiException

    try:
        config_map = client.core_api.read_namespaced_config_map(name + TEMPLATE_SUFFIX, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise MlstackError(
            f"cannot read ConfigMap {namespace}/{name}{TEMPLATE_SUFFIX}: HTTP {exc.status} {exc.reason}"
        ) from exc
    text = (config_map.data or {}).get(TEMPLATE_KEY)
    if not text:
        raise CheckFailed(f"ConfigMap {namespace}/{name}{TEMPLATE_SUFFIX} has no {TEMPLATE_KEY}")
    return yaml.safe_load(text)


def serve_version(
    inference_service: str,
    namespace: str,
    model_version: str,
    storage_uri: str,
    percent: int,
    kserve_client=None,
    aliases: dict[str, str] | None = None,
    apply_aliases: Callable[[list[rollout.AliasOp]], list[str]] | None = None,
    locate: Callable[[dict], str] | None = None,
) -> dict:
    """Make ``inference_service`` serve ``model_version``: create it, start a canary, or nothing.

    Refuses (CheckFailed) while another canary is in flight or the service is still rolling out.
    ``apply_aliases`` moves the MLflow aliases once the API accepted the change (as ``kubectl model``
    does). Without ``storage_uri``, ``locate`` finds it from the service (or the chart's template when
    there is none yet): the object says where its registry keeps artifacts. Returns what was done,
    for the step's output (``move`` is the rollout move's kind).
    """
    import kserve
    from kserve import KServeClient
    from kubernetes.client.exceptions import ApiException

    client = kserve_client or KServeClient()
    current = _current(client, inference_service, namespace)
    template = None if current is not None else _template(client, inference_service, namespace)
    source = current if current is not None else template
    if not storage_uri and locate is not None and source is not None:
        storage_uri = locate(source)
    move = rollout.deploy(current, template, aliases or {}, str(model_version), storage_uri, percent)
    result = {
        "inference_service": inference_service,
        "namespace": namespace,
        "move": move.kind,
        "deployed": move.kind != "noop",
        "model_version": str(model_version),
        "storage_uri": storage_uri,
        "summary": move.summary,
        "warnings": move.warnings,
        "alias_ops": [op.describe() for op in move.alias_ops],
    }
    if move.kind == "noop":
        return result
    try:
        if move.create is not None:
            body = dict(move.create)
            body["metadata"] = {**body["metadata"], "namespace": namespace}
            client.api_instance.create_namespaced_custom_object(
                isvc.GROUP, isvc.VERSION, namespace, isvc.PLURAL, body
            )
        else:
            assert current is not None, "rollout.deploy patches only an existing InferenceService"
            (patch,) = move.patches
            patch = isvc.merge_patch(
                patch,
                {
                    "apiVersion": isvc.API_VERSION,
                    "kind": "InferenceService",
                    "metadata": {
                        "name": inference_service,
                        "namespace": namespace,
                        "resourceVersion": current["metadata"].get("resourceVersion"),
                    },
                },
            )
            configuration = kserve.Configuration()
            configuration.client_side_validation = False  # a merge patch is a partial object
            client.patch(
                inference_service,
                _sdk_object(patch, "V1beta1InferenceService", configuration),
                namespace=namespace,
            )
    except (RuntimeError, ApiException) as exc:  # KServeClient.patch wraps API errors in RuntimeError
        # KServeClient raises RuntimeError inside its except block: the ApiException is its __context__
        cause = exc if isinstance(exc, ApiException) else exc.__cause__ or exc.__context__ or exc
        raise CheckFailed(
            f"the API refused {move.kind} of {namespace}/{inference_service}: {server_message(cause)}"
        ) from exc
    log.info("%s: %s", move.kind, move.summary)
    result["percent"] = 100 if move.create is not None else int(percent)
    result["champion_version"] = None if current is None else isvc.serving_version(current)
    if apply_aliases is not None:
        result["registry"] = apply_aliases(move.alias_ops)
    return result


def deploy_step(
    deploy: bool,
    model_name: str,
    model_version: str,
    inference_service: str,
    namespace: str,
    storage_uri: str = "",
    percent: int = 0,
    kserve_client=None,
    tracking_uri: str = "",
) -> dict:
    """The step's body: nothing when ``deploy`` is off; otherwise find the version's location and serve it."""
    if not deploy:
        return {"deployed": False, "reason": "deploy parameter is off"}
    from mlstack.adapters import model_aliases
    from mlstack.core.settings import load_settings

    # the registry the version was registered in (aliases move there too): an explicit argument wins
    settings = load_settings(tracking_uri=tracking_uri or None)
    if not model_version:
        return {"deployed": False, "reason": "nothing was registered"}

    def locate(obj: dict) -> str:
        # mlflow-artifacts:/ locations mapped onto the destination the chart annotates the service with
        return model_aliases.storage_uri(settings, model_name, model_version, isvc.artifacts_destination(obj))

    return serve_version(
        inference_service,
        namespace,
        model_version,
        storage_uri,
        percent or settings.canary.initial_percent,
        kserve_client=kserve_client,
        aliases=model_aliases.aliases(settings, model_name),
        apply_aliases=lambda ops: model_aliases.apply(settings, ops),
        locate=locate,
    )
