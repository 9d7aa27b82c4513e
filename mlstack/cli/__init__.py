"""The top floor: wires components, serving and monitoring together; holds no logic of its own."""
