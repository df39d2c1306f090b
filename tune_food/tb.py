"""TensorBoard logging for sweeps: one run per trial, four scalar tags, the HParams tab.

:class:`TensorBoardCallback` is a Ray Tune logger callback (a subclass of Tune's own
``TBXLoggerCallback``, so Tune adds no second TensorBoard logger). It runs in the
driver and writes, into each trial's directory, the scalars ``loss/train``,
``loss/test``, ``accuracy/train``, ``accuracy/test`` (and ``loss/val``,
``accuracy/val`` when a validation split exists) at step = epoch, and when the trial
ends the HParams summaries: every hyperparameter of the trial's config and its final
metrics.
"""

from __future__ import annotations

import math
from typing import Any, Dict

from ray.tune.logger import TBXLoggerCallback

#: reported metric -> TensorBoard tag
TAGS = {"train_loss": "loss/train", "test_loss": "loss/test", "train_acc": "accuracy/train",
        "test_acc": "accuracy/test", "val_loss": "loss/val", "val_acc": "accuracy/val"}
#: final metrics shown in the HParams tab
HPARAM_METRICS = ("test_acc", "test_loss", "test_acc_ci_low", "test_acc_ci_high", "train_acc",
                  "train_loss", "val_acc", "val_loss")


class TensorBoardCallback(TBXLoggerCallback):
    """Write the four tags per epoch and the HParams of every trial (see module doc)."""

    def log_trial_result(self, iteration: int, trial, result: Dict) -> None:
        if trial not in self._trial_writer:
            self.log_trial_start(trial)
        writer = self._trial_writer[trial]
        step = int(result.get("epoch", iteration))
        for key, tag in TAGS.items():
            value = result.get(key)
            if isinstance(value, (int, float)) and not math.isnan(value):
                writer.add_scalar(tag, value, global_step=step)
        self._trial_result[trial] = {k: result[k] for k in HPARAM_METRICS
                                     if isinstance(result.get(k), (int, float))}
        writer.flush()

    def _try_log_hparams(self, trial, result: Dict) -> None:
        from tensorboardX.summary import hparams

        params: dict[str, Any] = {}
        for key, value in trial.config.items():
            if isinstance(value, (bool, int, float, str)):
                params[key] = value
            elif value is None:
                params[key] = "default"
        metrics = {f"final/{k}": v for k, v in result.items()}
        writer = self._trial_writer[trial]
        for summary in hparams(hparam_dict=params, metric_dict=metrics):
            writer.file_writer.add_summary(summary)
        # HParams needs the metric tags to exist as scalars in the same run.
        step = int(trial.last_result.get("epoch", 0)) if trial.last_result else 0
        for tag, value in metrics.items():
            writer.add_scalar(tag, value, global_step=step)
