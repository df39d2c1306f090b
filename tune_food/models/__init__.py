"""The model registry (a frozen pretrained backbone, a new head, the transform of its
weights) and the device a trial or task computes on.
"""

from tune_food.moved import forward as _forward


def __getattr__(name: str):
    """What ``tune_food.models`` held when it was one module, for older pickles."""
    return _forward(__name__, name)
