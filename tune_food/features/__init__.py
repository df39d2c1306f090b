"""Backbone features computed once per distinct image: the per-image store (``store``),
extraction in this process (``extract``), extraction as Ray tasks for a sweep
(``tasks``).
"""

from tune_food.moved import forward as _forward


def __getattr__(name: str):
    """What ``tune_food.features`` held when it was one module, for older pickles."""
    return _forward(__name__, name)
