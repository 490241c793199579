"""Stage 6: register students in the MLflow registry, gate promotion, and trace lineage.

``stage.run_register_stage`` logs and registers the trained student (alias
``challenger``) and runs the promotion gate; ``promote.promote_command`` re-runs
or forces the gate for a version; ``lineage.lineage_command`` answers "where did
this model come from?" from the tags and artifacts recorded at registration.
"""
