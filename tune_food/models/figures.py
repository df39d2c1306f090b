"""The names of a backbone's deployment figures (:func:`tune_food.models.deploy.deployment_figures`
measures them), as ``sweep.json``'s ``deployment`` records them, the leaderboard's columns
show them and an exported demo's ``model.json`` carries them. No torch here: the commands
that only read them (``export --help``, the web page) stay light.
"""

from __future__ import annotations

CPU_MS = "cpu_ms"            # ms per photo end to end on one CPU thread (ONNX Runtime)
PARAMS_SERVED = "params"     # the classifier's parameters (backbone and head)
MODEL_MB = "model_mb"        # the exported ONNX model's size in MB
FIGURES = (CPU_MS, PARAMS_SERVED, MODEL_MB)
