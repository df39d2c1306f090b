"""The shipped search spaces (``grid.yaml``, ``optuna.yaml``, ``seed.yaml``).

This folder is the repository's one copy of them; the build installs it as the package
``tune_food.search_spaces`` (``pyproject.toml``), which is how the code finds them
(:func:`tune_food.sweep.spaces.default_space_dir`), installed or editable alike.
"""
