"""Inference: a trained trial's classifier and its answers, below the commands that use
it (``predict``, ``export``, the web page). ``checkpoints`` chooses a trial's checkpoint
from a sweep's leaderboard; ``classifier`` loads it and classifies images.
"""
