"""A sweep from the command line to the leaderboard: options, search space, plan, cluster
checks, Ray, the search algorithm, launch (``python -m tune_food.sweep``: ``run``).
"""
