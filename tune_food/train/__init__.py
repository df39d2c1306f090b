"""One trial: its hyperparameters (``hparams``), the epoch loops (``engine``) and the Ray
Tune trainable (``trainable``).
"""
