"""The thin KFP component over ``components.deploy`` (kept apart from it for the reason given in ``ops``)."""

from kfp import dsl

from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def deploy_canary_op(
    register_result: str,
    deploy: bool,
    inference_service: str,
    namespace: str,
    percent: int = 0,
    storage_uri: str = "",
    tracking_uri: str = "",
) -> str:
    """Serve the version ``register_op`` registered (create the service, or a canary), when ``deploy`` is on; JSON of what was done."""
    import json

    from components.deploy import deploy_step
    from components.errors import fail_step
    from mlstack.core.errors import MlstackError

    registered = json.loads(register_result)
    try:
        result = deploy_step(
            deploy,
            registered.get("model_name") or "",
            registered.get("model_version") or "",
            inference_service or registered.get("model_name") or "",
            namespace,
            storage_uri,
            percent,
            tracking_uri=tracking_uri,
        )
    except MlstackError as exc:
        fail_step(str(exc))
    print(json.dumps(result), flush=True)
    return json.dumps(result)
