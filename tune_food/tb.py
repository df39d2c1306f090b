"""TensorBoard logging for sweeps: one run per trial, the scalar tags, the HParams tab.

:class:`TensorBoardCallback` is a Ray Tune ``LoggerCallback`` (Tune's public logger
interface) that writes with tensorboardX, in the driver, into each trial's folder:

* scalars ``loss/train``, ``loss/test``, ``accuracy/train``, ``accuracy/test`` (and
  ``loss/val``, ``accuracy/val`` with a validation split) at step = epoch;
* when the trial ends, the HParams summaries: the trial's hyperparameters (resolved:
  the head dropout actually used, not ``None``) and its final metrics.

A resumed trial replays the epochs after its last checkpoint. Its new writer starts
with tensorboardX's ``purge_step`` at the first replayed epoch, so TensorBoard drops the
earlier file's events from that step on and shows one curve without doubled steps.

The sweep sets ``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1`` and passes Tune's own CSV and
JSON logger callbacks beside this one, so Tune adds no second TensorBoard logger.
"""

from __future__ import annotations

import math
from typing import Any, Dict

from ray.tune.logger import LoggerCallback

#: reported metric -> TensorBoard tag
TAGS = {"train_loss": "loss/train", "test_loss": "loss/test", "train_acc": "accuracy/train",
        "test_acc": "accuracy/test", "val_loss": "loss/val", "val_acc": "accuracy/val"}
#: final metrics shown in the HParams tab (as ``final/<metric>`` scalars)
HPARAM_METRICS = ("test_acc", "test_loss", "test_acc_ci_low", "test_acc_ci_high", "train_acc",
                  "train_loss", "val_acc", "val_loss")


def hparam_values(config: Dict[str, Any], result: Dict[str, Any]) -> Dict[str, Any]:
    """The hyperparameters of a trial as TensorBoard shows them: scalars only, the
    dropout resolved to the value the head used (``head_dropout``)."""
    params: Dict[str, Any] = {}
    for key, value in config.items():
        if key == "dropout" and value is None:
            value = result.get("head_dropout")
        if isinstance(value, (bool, int, float, str)):
            params[key] = value
    return params


class TensorBoardCallback(LoggerCallback):
    """Write the scalar tags per epoch and the HParams of every trial (module doc)."""

    def __init__(self) -> None:
        self._writers: Dict[Any, Any] = {}
        self._final: Dict[Any, Dict[str, float]] = {}

    def _writer(self, trial, first_step: int):
        if trial not in self._writers:
            from tensorboardX import SummaryWriter

            # steps >= purge_step in earlier event files are dropped by TensorBoard
            purge = first_step if first_step > 1 else None
            self._writers[trial] = SummaryWriter(logdir=trial.local_path, purge_step=purge,
                                                 flush_secs=30)
        return self._writers[trial]

    def log_trial_result(self, iteration: int, trial, result: Dict) -> None:
        step = int(result.get("epoch", iteration))
        writer = self._writer(trial, step)
        for key, tag in TAGS.items():
            value = result.get(key)
            if isinstance(value, (int, float)) and not math.isnan(value):
                writer.add_scalar(tag, value, global_step=step)
        self._final[trial] = {k: result[k] for k in HPARAM_METRICS
                              if isinstance(result.get(k), (int, float))}
        self._final[trial]["_step"] = step
        writer.flush()

    def log_trial_end(self, trial, failed: bool = False) -> None:
        writer = self._writers.pop(trial, None)
        final = self._final.pop(trial, None)
        if writer is None:
            return
        if final:
            from tensorboardX.summary import hparams

            step = int(final.pop("_step"))
            metrics = {f"final/{k}": v for k, v in final.items()}
            params = hparam_values(trial.config, trial.last_result or {})
            for summary in hparams(hparam_dict=params, metric_dict=metrics):
                writer.file_writer.add_summary(summary)
            # HParams needs the metric tags to exist as scalars in the same run
            for tag, value in metrics.items():
                writer.add_scalar(tag, value, global_step=step)
        writer.close()

    def on_experiment_end(self, trials, **info) -> None:
        for trial in list(self._writers):
            self.log_trial_end(trial)
