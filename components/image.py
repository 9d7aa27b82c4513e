"""The container image every component runs in (it has this repository installed)."""

import os

# set at compile time for a cluster build, e.g. MLSTACK_COMPONENT_IMAGE=localhost:5001/mlstack:0.1.0
COMPONENT_IMAGE = os.environ.get("MLSTACK_COMPONENT_IMAGE", "mlstack:0.1.0")
