"""``python -m tune_food.app``: see :mod:`tune_food.app.cli`."""

from tune_food.app.cli import main
from tune_food.common.cliargs import exit_program, quiet_broken_pipe

if __name__ == "__main__":
    quiet_broken_pipe()
    exit_program(main())
