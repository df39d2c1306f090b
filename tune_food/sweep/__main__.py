"""``python -m tune_food.sweep``: :func:`tune_food.sweep.run.main` as a program."""

if __name__ == "__main__":   # a signal while the modules below import: nothing was written yet
    import os as _os
    import signal as _signal

    from tune_food.sweepdir.layout import SWEEP_COMMAND as _COMMAND

    _EARLY = f"{_COMMAND}: interrupted before the sweep started; nothing was written\n".encode()

    def _early_exit(signum, frame):
        _os.write(2, _EARLY)
        _os._exit(130)

    _signal.signal(_signal.SIGINT, _early_exit)
    _signal.signal(_signal.SIGTERM, _early_exit)

from tune_food.common.cliargs import exit_program, quiet_broken_pipe  # noqa: E402
from tune_food.sweep.run import main  # noqa: E402

quiet_broken_pipe()  # only as a program: in-process callers keep their SIGPIPE handling
exit_program(main())
