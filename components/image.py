"""The container image every mlstack component runs in, and the decorator that makes a component of it.

One constant, so the training and batch pipelines always run the same code; override it with
``MLSTACK_COMPONENT_IMAGE`` (e.g. ``registry.example.com/mlstack-components:1.2.0``) before compiling.

Why ``component`` and not ``dsl.component`` directly: a component body imports its plain function
from the module that defines the component, and inside a running task KFP sets ``_KFP_RUNTIME=true``,
under which ``kfp.dsl`` has no ``component`` attribute, so a module-level ``@dsl.component`` would
fail to import there. ``component`` decorates at compile time and is a no-op inside the task.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from kfp import dsl

COMPONENT_IMAGE = os.environ.get("MLSTACK_COMPONENT_IMAGE", "mlstack-components:dev")


def component(func: Callable) -> Callable:
    """``@dsl.component`` on the mlstack image, without installing kfp (the image and kfp.local have it)."""
    if not hasattr(dsl, "component"):  # inside a running task: the body is executed, not compiled
        return func
    return dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)(func)
