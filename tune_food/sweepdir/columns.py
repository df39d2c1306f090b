"""The column names of a sweep's tables: ``leaderboard.csv`` (and its Parquet copy),
``leaderboard_by_config.csv`` and ``results.csv``. Written by
:func:`tune_food.results.leaderboard.make_leaderboard`; read by the summary, ``report``,
``predict`` / ``export`` (which trial and checkpoint), the web page and MLflow's records.
The words stay as the CSV files have always had them.

The leaderboard has one row per trial: its own columns below, then the trial's
hyperparameters (:data:`tune_food.train.hparams.PARAMS`), the metrics of the epoch it
shows (:data:`METRIC_COLUMNS`, :data:`INFO_COLUMNS`: what the trainable reports), where
its checkpoint is, and the deployment figures of its backbone
(:data:`DEPLOYMENT_COLUMNS`, named in :mod:`tune_food.models.figures`).
"""

from __future__ import annotations

from tune_food.models.figures import CPU_MS, MODEL_MB

RANK = "rank"                          # 1 = best; empty for a trial that did not complete
TRIAL_ID = "trial_id"                  # Ray Tune's id ("a7a6a_00003")
TRIAL_NAME = "trial_name"              # the name the grid gives it ("3_epochs"), else the id
STATUS = "status"                      # a tune_food.sweepdir.status.TrialStatus word
EPOCHS_DONE = "epochs_done"            # the epoch the row shows
EPOCHS_PLANNED = "epochs_planned"      # the trial's epochs hyperparameter
RANKED_BY = "ranked_by"                # "test_acc (max)": the metric and its mode
CHECKPOINT_PATH = "checkpoint_path"    # relative to the sweep folder
CHECKPOINT_EPOCH = "checkpoint_epoch"  # the epoch that checkpoint holds
LOGDIR = "logdir"                      # the trial folder, relative to the sweep folder
ERROR = "error"                        # the last line of a failed trial's error
P_VS_BEST = "p_vs_best"                # exact McNemar p-value against rank 1
TIED_WITH_BEST = "tied_with_best"      # p_vs_best >= tune_food.common.stats.ALPHA
EPOCH = "epoch"                        # results.csv: one row per (trial, epoch)

# confirmed.csv (results.confirm): a row per configuration --confirm retrained; besides
# RANK (by the mean), TRIAL_NAME / TRIAL_ID (the sweep's trial it comes from), the
# configuration's parameters, P_VS_BEST (paired t-test over seeds against the confirmed
# best), TIED_WITH_BEST and the deployment figures; over_seeds names the ranking
# metric's statistics over the seeds
SWEEP_RANK = "sweep_rank"              # the rank its trial had on the sweep's leaderboard
NEW_SEEDS = "new_seeds"                # the seeds that completed ("0 1 2")
POOLED_TEST_ACC = "pooled_test_acc"    # test predictions of every seed pooled: correct / all
POOLED_TEST_CI_LOW = "pooled_test_acc_ci_low"     # its Wilson interval
POOLED_TEST_CI_HIGH = "pooled_test_acc_ci_high"
CONFIRMS = "confirms"                  # leaderboard: the configuration a confirmation trial retrains (its trial_id)

#: the metrics of the epoch a row shows (as the trainable reports them)
METRIC_COLUMNS = ["test_acc", "test_acc_ci_low", "test_acc_ci_high", "test_loss",
                  "val_acc", "val_acc_ci_low", "val_acc_ci_high", "val_loss",
                  "train_acc", "train_loss"]
#: what else the trainable reports of that epoch: images, parameters, where and how it ran
INFO_COLUMNS = ["test_correct", "test_images", "val_correct", "val_images", "trainable_params",
                "total_params", "feature_cache", "backbone_runtime", "device", "node_id",
                "node_ip", "time_total_s"]
#: the deployment figures of the trial's backbone (tune_food.models.figures) that the
#: leaderboard shows
DEPLOYMENT_COLUMNS = (CPU_MS, MODEL_MB)


#: the statistics over seeds of a metric in confirmed.csv (:func:`over_seeds`)
SEED_STATS = ("mean", "std", "ci_low", "ci_high")


def over_seeds(metric: str, stat: str) -> str:
    """confirmed.csv's column of ``metric``'s statistic ``stat`` (one of
    :data:`SEED_STATS`) over a configuration's seeds: ``val_acc_mean``, ``val_acc_ci_low``."""
    if stat not in SEED_STATS:
        raise ValueError(f"no statistic {stat!r} over seeds; one of {', '.join(SEED_STATS)}")
    return f"{metric}_{stat}"
