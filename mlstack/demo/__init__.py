"""`mlstack demo`: the whole loop on one machine (top floor: wires pipelines, serving and monitoring)."""
