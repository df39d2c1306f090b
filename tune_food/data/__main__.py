"""``python -m tune_food.data COMMAND``: :func:`tune_food.data.cli.main` as a program (the
command line needs neither torch nor the loaders)."""

from tune_food.common.cliargs import exit_program, quiet_broken_pipe
from tune_food.data.cli import main

quiet_broken_pipe()
exit_program(main())
