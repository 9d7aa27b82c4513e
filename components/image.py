"""The container image every component runs in (it has this repository installed)."""

from mlstack.core.settings import load_settings

# set at compile time for a cluster build, e.g. MLSTACK_COMPONENT_IMAGE=localhost:5001/mlstack:0.1.0
COMPONENT_IMAGE = load_settings().component_image
