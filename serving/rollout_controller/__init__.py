"""The rollout controller: MLflow aliases (champion, challenger) drive InferenceServices.

``plan`` decides (pure), ``reconciler`` applies through the one rollout module and records Events
and metrics, ``lease`` elects the one replica that acts, ``webhook`` authenticates MLflow's
deliveries (which only wake the controller), ``controller`` runs the loops, ``app`` is the HTTP face.
"""
