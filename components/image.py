"""The container image every mlstack component runs in (it has this repository installed).

One constant, so the training and batch pipelines always run the same code; override it with
``MLSTACK_COMPONENT_IMAGE`` (e.g. ``registry.example.com/mlstack-components:1.2.0``) before compiling.
"""

from __future__ import annotations

import os

COMPONENT_IMAGE = os.environ.get("MLSTACK_COMPONENT_IMAGE", "mlstack-components:dev")
