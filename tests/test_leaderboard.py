"""Unit tests of the leaderboard logic on hand-built trials and frames: statuses,
ranking and tie-breaks, paired McNemar p-values, seed aggregation with t-intervals and the
results table (the statistics themselves: tests/test_stats.py). Expected values are worked
out here from the formulas (Student t from printed tables), not by calling the function
under test again."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from tune_food.results.leaderboard import (
    STATUSES,
    TrialRecord,
    compare_with_best,
    dedupe_history,
    leaderboard_by_config,
    make_leaderboard,
    results_dataframe,
    tie_summary,
    trial_status,
)

ROOT = "/sweeps/s"
KEYS = ["model", "epochs", "lr", "seed", "dropout", "test_data"]


def history(epochs: int, test_acc: float | None = 0.5, test_loss: float = 1.0,
            val: tuple[float, float] | None = None, saved: tuple[int, ...] = ()) -> pd.DataFrame:
    """``epochs`` reported epochs; the last one carries the given metrics."""
    rows = []
    for e in range(1, epochs + 1):
        last = e == epochs
        row = {"epoch": e, "test_acc": test_acc if last else 0.1, "test_loss":
               test_loss if last else 9.0, "train_acc": 0.5, "train_loss": 1.0,
               "test_correct": None, "test_images": 20, "head_dropout": 0.2,
               "checkpoint_saved": e in saved, "trial_name": None}
        if val is not None:
            row["val_acc"], row["val_loss"] = val if last else (0.1, 9.0)
        rows.append(row)
    return pd.DataFrame(rows)


def record(trial_id: str, ray_status: str = "TERMINATED", planned: int = 3,
           done: int | None = None, error: str | None = None, **metrics) -> TrialRecord:
    done = planned if done is None else done
    h = history(done, **metrics) if done else pd.DataFrame()
    ckpt = f"{ROOT}/t_{trial_id}/checkpoint_000001" if done else None
    return TrialRecord(trial_id=trial_id, ray_status=ray_status,
                       config={"model": "efficientnet_lite0", "epochs": planned, "lr": 0.01,
                               "seed": 0, "dropout": None, "test_data": ["a", "b"]},
                       history=h, path=f"{ROOT}/t_{trial_id}", checkpoint=ckpt, error=error)


# ------------------------------------------------------------------------ statuses

@pytest.mark.parametrize("rec,expected", [
    (record("a", "TERMINATED", planned=3, done=3), "TERMINATED"),
    (record("a", "TERMINATED", planned=9, done=2), "EARLY_STOPPED"),   # ASHA stopped it
    (record("a", "RUNNING", planned=9, done=2), "INTERRUPTED"),
    (record("a", "PAUSED", planned=9, done=2), "INTERRUPTED"),
    (record("a", "PENDING", planned=9, done=0), "NOT_STARTED"),
    (record("a", "TERMINATED", planned=9, done=0), "NOT_STARTED"),
    (record("a", "ERROR", planned=3, done=1), "ERROR"),
    (record("a", "TERMINATED", planned=3, done=3, error="worker died"), "ERROR"),
    (record("a", "RUNNING", planned=3, done=3), "TERMINATED"),   # all epochs reported
])
def test_trial_status(rec, expected):
    assert trial_status(rec) == expected


# ------------------------------------------------------------------------ ranking

def _mixed_records() -> list[TrialRecord]:
    # given in an order that is neither the ranking nor the status order
    return [
        record("err", "ERROR", planned=3, done=1, error="boom", test_acc=0.99),
        record("low", test_acc=0.80, test_loss=0.60),
        record("int", "RUNNING", planned=3, done=2, test_acc=0.97),     # better, not complete
        record("tie_hi_loss", test_acc=0.90, test_loss=0.50),
        record("none", "PENDING", planned=3, done=0),
        record("early", "TERMINATED", planned=9, done=2, test_acc=0.85, test_loss=0.40),
        record("tie_lo_loss", test_acc=0.90, test_loss=0.30),
        record("int2", "PAUSED", planned=3, done=1, test_acc=0.95),
    ]


def test_complete_trials_rank_first_ties_by_lower_loss_then_the_rest_by_status():
    board = make_leaderboard(_mixed_records(), "test_acc", "max", KEYS, ROOT)
    assert list(board["trial_id"]) == ["tie_lo_loss", "tie_hi_loss", "early", "low",
                                       "int", "int2", "none", "err"]
    assert list(board["status"]) == ["TERMINATED", "TERMINATED", "EARLY_STOPPED", "TERMINATED",
                                     "INTERRUPTED", "INTERRUPTED", "NOT_STARTED", "ERROR"]
    assert board["rank"].dtype == "Int64"
    assert board["rank"].tolist()[:4] == [1, 2, 3, 4] and board["rank"][4:].isna().all()
    assert list(board["epochs_done"]) == [3, 3, 2, 3, 2, 1, 0, 1]
    assert list(board["epochs_planned"]) == [3, 3, 9, 3, 3, 3, 3, 3]
    assert (board["ranked_by"] == "test_acc (max)").all()
    assert board.loc[board["trial_id"] == "err", "error"].item() == "boom"


def test_the_order_of_the_input_does_not_change_the_ranking():
    forward = make_leaderboard(_mixed_records(), "test_acc", "max", KEYS, ROOT)
    backward = make_leaderboard(_mixed_records()[::-1], "test_acc", "max", KEYS, ROOT)
    assert list(forward["trial_id"][:4]) == list(backward["trial_id"][:4])
    assert list(forward["status"]) == list(backward["status"])


def test_unranked_rows_keep_the_status_order_of_STATUSES():
    board = make_leaderboard(_mixed_records(), "test_acc", "max", KEYS, ROOT)
    rest = board[board["rank"].isna()]["status"].tolist()
    assert rest == sorted(rest, key=STATUSES.index)


def test_unranked_rows_follow_trial_order_within_a_status_and_keep_plain_names():
    """After an interrupt: created trials that never reported are named like the others
    (their folder without its ``_<number>``), and each status lists trials in order."""
    recs = [TrialRecord(trial_id=f"abc_0000{i}", ray_status=status,
                        config={"model": "efficientnet_lite0", "epochs": 3, "seed": i},
                        history=history(done) if done else pd.DataFrame(),
                        path=f"{ROOT}/seed={i}_0000{i}")
            for i, status, done in [(3, "PENDING", 0), (0, "RUNNING", 1), (2, "PENDING", 0),
                                    (1, "RUNNING", 2)]]
    recs.append(TrialRecord(trial_id="", ray_status="NOT_CREATED", config={"seed": 4},
                            history=pd.DataFrame(), path=f"{ROOT}/(not created)",
                            extra={"trial_name": "seed=4"}))
    board = make_leaderboard(recs, "test_acc", "max", KEYS, ROOT)
    assert list(board["trial_id"]) == ["abc_00000", "abc_00001", "abc_00002", "abc_00003", ""]
    assert list(board["status"]) == ["INTERRUPTED"] * 2 + ["NOT_STARTED"] * 3
    assert list(board["trial_name"]) == ["seed=0", "seed=1", "seed=2", "seed=3", "seed=4"]


def test_mode_min_ranks_the_lowest_first():
    recs = [record("a", test_acc=0.7), record("b", test_acc=0.9), record("c", test_acc=0.8)]
    board = make_leaderboard(recs, "test_acc", "min", KEYS, ROOT)
    assert list(board["trial_id"]) == ["a", "c", "b"]
    assert board["ranked_by"][0] == "test_acc (min)"


def test_val_acc_ties_are_broken_by_val_loss_not_test_loss():
    # equal val_acc; "a" has the lower test_loss but the higher val_loss
    recs = [record("a", test_acc=0.9, test_loss=0.1, val=(0.8, 0.7)),
            record("b", test_acc=0.6, test_loss=0.9, val=(0.8, 0.2)),
            record("c", test_acc=0.99, test_loss=0.0, val=(0.7, 0.1))]
    board = make_leaderboard(recs, "val_acc", "max", KEYS, ROOT)
    assert list(board["trial_id"]) == ["b", "a", "c"]


def test_a_complete_trial_without_the_metric_is_not_ranked():
    recs = [record("a", test_acc=0.7), record("nan", test_acc=None)]
    board = make_leaderboard(recs, "test_acc", "max", KEYS, ROOT)
    assert list(board["trial_id"]) == ["a", "nan"]
    assert board["rank"][0] == 1 and pd.isna(board["rank"][1])
    assert board["status"][1] == "TERMINATED"


def test_row_values_paths_and_columns():
    recs = [record("a", test_acc=0.75, test_loss=0.5)]
    recs[0].history["checkpoint_saved"] = [True, True, False]   # epoch 3 not checkpointed
    outside = TrialRecord("b", "TERMINATED", {"epochs": 1, "dropout": 0.3},
                          history(1, test_acc=0.5), path="/elsewhere/t_b",
                          checkpoint="/elsewhere/t_b/ck")
    board = make_leaderboard(recs + [outside], "test_acc", "max", KEYS, ROOT)
    a, b = board.iloc[0], board.iloc[1]
    assert a["checkpoint_path"] == "t_a/checkpoint_000001" and a["logdir"] == "t_a"
    assert a["checkpoint_epoch"] == 2                 # the last epoch flagged as saved
    assert b["checkpoint_path"] == "/elsewhere/t_b/ck"  # outside the sweep: as it was
    assert pd.isna(b["checkpoint_epoch"])             # no epoch flagged
    assert a["dropout"] == 0.2                        # None in the config: the model's default
    assert b["dropout"] == 0.3
    assert a["test_data"] == "a+b" and a["trial_name"] == "t_a"
    assert a["test_acc"] == 0.75 and a["test_loss"] == 0.5 and a["test_images"] == 20
    assert "test_correct" not in board              # no trial reported it: column dropped
    assert "val_acc" not in board                   # no validation split held out


def test_empty_records_give_an_empty_board():
    assert make_leaderboard([], "test_acc", "max", KEYS, ROOT).empty


# ------------------------------------------------------------------------ McNemar

def _predictions(correct: list[bool], sha: list[str], split: str = "test") -> pd.DataFrame:
    return pd.DataFrame({"split": split, "sha256": sha, "label": 0,
                         "predicted": [0 if ok else 1 for ok in correct]})


def test_compare_with_best_pairs_images_by_content():
    n = 20
    sha = [f"h{i:02d}" for i in range(n)]
    best = [True] * 16 + [False] * 4
    # b = 1 (only the best right), c = 3 (only the other right): p = 2 * (1 + 4) / 16
    close = list(best)
    close[0] = False
    close[16:19] = [True, True, True]
    # b = 8, c = 0: p = 2 / 2**8
    far = [False] * 8 + best[8:]
    recs = [record("best", test_acc=0.80), record("close", test_acc=0.75),
            record("far", test_acc=0.40), record("apart", test_acc=0.30),
            record("int", "RUNNING", planned=3, done=1, test_acc=0.99)]
    board = make_leaderboard(recs, "test_acc", "max", KEYS, ROOT)
    val_noise = _predictions([False] * n, sha, split="val")   # another split: ignored
    preds = {
        "best": pd.concat([_predictions(best, sha), val_noise]),
        # shuffled rows and a duplicated image: paired by sha256, each image once
        "close": pd.concat([_predictions(close, sha).iloc[::-1],
                            _predictions(close[:1], sha[:1])]),
        "far": _predictions(far, sha),
        "apart": _predictions(best, [s + "x" for s in sha]),   # other images
        "int": _predictions(best, sha),
    }
    out = compare_with_best(board, preds, "test")
    p = dict(zip(out["trial_id"], out["p_vs_best"]))
    tied = dict(zip(out["trial_id"], out["tied_with_best"]))
    assert p["best"] == 1.0 and tied["best"]
    assert p["close"] == pytest.approx(0.625)   # 2 * (1 + 4) / 16
    assert tied["close"]
    assert p["far"] == pytest.approx(2 / 256) and not tied["far"]
    assert pd.isna(p["apart"]) and pd.isna(tied["apart"])       # not the same images
    assert pd.isna(p["int"]) and pd.isna(tied["int"])           # not ranked
    assert out["p_vs_best"].dtype == "Float64" and out["tied_with_best"].dtype == "boolean"
    assert "p_vs_best" not in board                              # the input is left alone

    summary = tie_summary(out, "test")
    assert summary.startswith("1 trial is statistically indistinguishable from the best on "
                              "these 20 test images (exact McNemar test, p >= 0.05)")
    assert "; 1 ranked trial(s) were evaluated on other images" in summary

    stricter = compare_with_best(board, preds, "test", alpha=0.7)
    assert not stricter.loc[stricter["trial_id"] == "close", "tied_with_best"].item()


def test_compare_with_best_without_the_best_predictions_leaves_it_empty():
    board = make_leaderboard([record("a", test_acc=0.8), record("b", test_acc=0.7)],
                             "test_acc", "max", KEYS, ROOT)
    out = compare_with_best(board, {"b": _predictions([True], ["h"])}, "test")
    assert out["p_vs_best"].isna().all() and out["tied_with_best"].isna().all()
    assert tie_summary(out, "test") == ""


# ------------------------------------------------------------------------ by config

# Student t, 0.975 quantile (two-sided 95 %), from printed tables (to 10 digits)
T975 = {1: 12.7062047362, 2: 4.3026527297, 3: 3.1824463053}


def test_leaderboard_by_config_means_stds_and_t_intervals():
    rows = []
    accs = {5: [0.80, 0.90, 0.85], 10: [0.95, 0.85], 20: [0.70]}
    for epochs, values in accs.items():
        for seed, acc in enumerate(values):
            rows.append({"rank": 0, "model": "m", "epochs": epochs, "seed": seed,
                         "test_acc": acc, "test_loss": 1 - acc})
    # not complete: left out of every aggregate
    rows.append({"rank": pd.NA, "model": "m", "epochs": 5, "seed": 9, "test_acc": 0.0,
                 "test_loss": 5.0})
    board = pd.DataFrame(rows)
    board["rank"] = pd.array([1, 2, 3, 4, 5, 6, pd.NA], dtype="Int64")
    by = leaderboard_by_config(board, ["model", "epochs", "seed"], "test_acc", "max")
    assert list(by["rank"]) == [1, 2, 3]
    assert list(by["epochs"]) == ["10", "5", "20"]     # ranked by the mean: 0.90, 0.85, 0.70
    assert "seed" not in by
    assert list(by["test_acc_count"]) == [2, 3, 1]
    assert list(by["test_acc_mean"]) == pytest.approx([0.90, 0.85, 0.70])
    # sample standard deviations (n - 1): sqrt(0.005) and 0.05
    assert by["test_acc_std"][0] == pytest.approx(math.sqrt(0.005))
    assert by["test_acc_std"][1] == pytest.approx(0.05)
    half10 = T975[1] * math.sqrt(0.005) / math.sqrt(2)   # = 12.706 * 0.05
    half5 = T975[2] * 0.05 / math.sqrt(3)
    assert by["test_acc_mean_ci_low"][0] == pytest.approx(0.90 - half10)
    assert by["test_acc_mean_ci_high"][0] == pytest.approx(0.90 + half10)
    assert by["test_acc_mean_ci_low"][1] == pytest.approx(0.85 - half5)
    assert by["test_acc_mean_ci_high"][1] == pytest.approx(0.85 + half5)
    assert half5 == pytest.approx(0.124207, abs=1e-6)
    assert pd.isna(by["test_acc_mean_ci_low"][2]) and pd.isna(by["test_acc_mean_ci_high"][2])
    assert by["test_loss_mean"][1] == pytest.approx(0.15)

    worst_first = leaderboard_by_config(board, ["model", "epochs", "seed"], "test_loss", "min")
    assert list(worst_first["epochs"]) == ["10", "5", "20"]


def test_dedupe_history_keeps_the_last_report_of_each_epoch():
    raw = pd.DataFrame({"epoch": [1, 2, 3, 2, 3, 4, None],
                        "test_acc": [0.1, 0.2, 0.3, 0.22, 0.33, 0.4, 0.9]})
    out = dedupe_history(raw)
    assert list(out["epoch"]) == [1, 2, 3, 4]
    assert list(out["test_acc"]) == [0.1, 0.22, 0.33, 0.4]
    assert list(out.index) == [0, 1, 2, 3]
    assert dedupe_history(None).empty and dedupe_history(pd.DataFrame({"x": [1]})).empty
    # Tune's internal flag in the first result after a restore is not a metric
    restored = pd.DataFrame({"epoch": [1, 2], "should_checkpoint": [None, True]})
    assert list(dedupe_history(restored).columns) == ["epoch"]


def test_results_dataframe_holds_each_trial_epoch_once_with_its_config():
    replayed = pd.DataFrame({"epoch": [1, 2, 2, 3], "test_acc": [0.5, 0.6, 0.65, 0.7],
                             "trial_id": "a"})
    recs = [TrialRecord("a", "TERMINATED", {"epochs": 3, "test_data": ["x", "y"], "lr": 0.1},
                        dedupe_history(replayed), "/s/a"),
            TrialRecord("n", "PENDING", {"epochs": 3}, pd.DataFrame(), "/s/n"),
            TrialRecord("b", "TERMINATED", {"epochs": 1, "test_data": "x", "lr": 0.2},
                        pd.DataFrame({"epoch": [1], "test_acc": [0.4], "trial_id": "b"}),
                        "/s/b")]
    df = results_dataframe(recs, ["epochs", "lr", "test_data"])
    assert list(zip(df["trial_id"], df["epoch"])) == [("a", 1), ("a", 2), ("a", 3), ("b", 1)]
    assert list(df["test_acc"]) == [0.5, 0.65, 0.7, 0.4]        # the replayed epoch 2 wins
    assert list(df["config/test_data"]) == ["x+y"] * 3 + ["x"]
    assert list(df["config/lr"]) == [0.1] * 3 + [0.2]
    assert results_dataframe([recs[1]], ["epochs"]).empty


# ------------------------------------------------------------------------ Wilson

def test_tie_summary_sentences():
    """The summary's every variant, word for word: plural and singular, with and without
    the number of images, and ranked trials that could not be compared."""
    def board(tied, p, images=75, rank=None):
        return pd.DataFrame({"rank": rank or list(range(1, len(tied) + 1)),
                             "tied_with_best": pd.array(tied, dtype="boolean"),
                             "p_vs_best": pd.array(p, dtype="Float64"),
                             "val_images": [images] * len(tied)})

    assert tie_summary(board([True, True, True], [1.0, 0.5, 0.3]), "val") == (
        "2 trials are statistically indistinguishable from the best on these 75 val images "
        "(exact McNemar test, p >= 0.05)")
    assert tie_summary(board([True, False, True], [1.0, 0.01, 0.3]), "val") == (
        "1 trial is statistically indistinguishable from the best on these 75 val images "
        "(exact McNemar test, p >= 0.05)")
    assert tie_summary(board([True, False], [1.0, 0.01], images=float("nan")), "val") == (
        "0 trials are statistically indistinguishable from the best "
        "(exact McNemar test, p >= 0.05)")
    apart = board([True, True, None, None], [1.0, 0.5, None, None], rank=[1, 2, 3, None])
    assert tie_summary(apart, "val") == (
        "1 trial is statistically indistinguishable from the best on these 75 val images "
        "(exact McNemar test, p >= 0.05); 1 ranked trial(s) were evaluated on other images "
        "and cannot be compared with it (p_vs_best empty)")
    assert tie_summary(board([True, None], [1.0, None]), "val") == ""   # one to compare
    no_rank = board([True, True, None], [1.0, 0.5, None]).drop(columns="rank")
    assert tie_summary(no_rank, "val").endswith("; 1 ranked trial(s) were evaluated on other "
                                                 "images and cannot be compared with it "
                                                 "(p_vs_best empty)")
    no_p = board([True, True], [1.0, 0.5]).drop(columns="p_vs_best")
    assert tie_summary(no_p, "val") == (
        "1 trial is statistically indistinguishable from the best on these 75 val images "
        "(exact McNemar test, p >= 0.05)")
    others = board([True, True], [1.0, 0.5])
    others["val_images"] = [75, 9]   # the number is rank 1's
    assert "on these 75 val images" in tie_summary(others, "val")
    assert tie_summary(board([True, True], [1.0, 0.2]).drop(columns="tied_with_best"),
                       "val") == ""


def test_ranking_is_stable_typed_and_indexed():
    """Equal metric and equal tie-break keep trial order (a stable sort); rank is an
    Int64 column 1..n then empty; the index is 0..n-1; a trial's reported name wins
    over its folder's; a trial without any result has no logdir."""
    records = [record("s_00003", test_acc=0.8, test_loss=0.5),
               record("s_00001", test_acc=0.8, test_loss=0.5),
               record("s_00002", test_acc=0.9, test_loss=0.7),
               record("s_00004", ray_status="ERROR", done=1, test_acc=0.99)]
    records[2].history["trial_name"] = "named"
    records[3].trial_id = ""
    board = make_leaderboard(records, "test_acc", "max", KEYS, ROOT)
    assert list(board["trial_id"]) == ["s_00002", "s_00003", "s_00001", ""]
    assert board["rank"].dtype == "Int64" and list(board["rank"][:3]) == [1, 2, 3]
    assert board["rank"].isna().iloc[3]
    assert list(board.index) == [0, 1, 2, 3] and "index" not in board
    assert board["trial_name"].iloc[0] == "named"
    assert board["logdir"].iloc[1] == "t_s_00003" and pd.isna(board["logdir"].iloc[3])
    # an unranked metric column the trials never reported: nobody is ranked
    none = make_leaderboard(records[:2], "val_acc", "max", KEYS, ROOT)
    assert none["rank"].isna().all() and "val_acc" not in none
    assert none["rank"].dtype == "Int64"       # typed even when nothing is ranked


@pytest.mark.parametrize("path, trial_id, name", [
    ("/s/lr=0.01_00003/", "a1b2_00003", "lr=0.01"),      # a trailing slash
    ("/s/lr=0.01_00003", "a1b2_00003", "lr=0.01"),
    ("/s/x_1_00007", "exp_1_00007", "x_1"),              # only the last number goes
    ("/s/x_00007", "00007", "x_00007"),                  # no experiment part: kept
    ("/s/x_00007", "exp_00008", "x_00007"),              # another number: kept
    ("/s/x_abc", "exp_abc", "x_abc"),                    # not a number: kept
    ("/s/modelX/", "exp_1", "modelX"),                   # only slashes are stripped
])
def test_a_trial_without_results_is_named_by_its_folder(path, trial_id, name):
    rec = TrialRecord(trial_id=trial_id, ray_status="PENDING", config={}, history=pd.DataFrame(),
                      path=path)
    board = make_leaderboard([rec], "test_acc", "max", [], ROOT)
    assert board["trial_name"].iloc[0] == name


def test_the_results_table_is_indexed_and_keeps_its_columns_when_empty():
    frame = results_dataframe([record("a", planned=2), record("b", planned=3)], KEYS)
    assert list(frame.index) == list(range(5)) and list(frame["epoch"]) == [1, 2, 1, 2, 3]
    empty = results_dataframe([record("c", done=0)], ["model", "lr"])
    assert empty.empty and list(empty.columns) == ["trial_id", "epoch", "config/model",
                                                   "config/lr"]


def test_leaderboard_by_config_at_its_edges():
    """Interval columns of the trials are not aggregated again; a row without the metric
    and unranked rows are left out; equal means keep their order; the index is 0..n-1;
    a configuration with a null parameter is a group of its own; a board without a
    rank column aggregates every row."""
    board = pd.DataFrame({
        "rank": pd.array([1, 2, 3, 4, 5, pd.NA], dtype="Int64"),
        "model": ["a", "b", "a", "c", "c", "a"], "dropout": [None, 0.2, None, None, None, None],
        "seed": [0, 0, 1, 0, 1, 2], "test_acc": [0.9, 0.9, 0.9, 0.8, None, 0.1],
        "test_acc_ci_low": [0.8] * 6, "test_acc_ci_high": [1.0] * 6})
    by = leaderboard_by_config(board, ["model", "dropout", "seed"], "test_acc", "max")
    assert list(by["model"]) == ["a", "b", "c"] and list(by["rank"]) == [1, 2, 3]
    assert pd.isna(by["dropout"][0]) and by["dropout"][1] == "0.2"   # null: its own group
    assert list(by["test_acc_count"]) == [2, 1, 1]          # c's second seed has no metric
    assert list(by.index) == [0, 1, 2] and "index" not in by
    assert not [c for c in by if c.startswith("test_acc_ci_")]
    assert by["test_acc_mean_ci_low"][0] == pytest.approx(0.9)   # std 0: a zero-width interval
    assert by.columns[0] == "rank"
    unranked = board.drop(columns="rank")
    every = leaderboard_by_config(unranked, ["model", "dropout", "seed"], "test_acc", "max")
    assert list(every["model"]) == ["b", "c", "a"]     # a's third seed (0.1) now counts
    assert list(every["test_acc_count"]) == [1, 1, 3]
    assert every["test_acc_mean"][2] == pytest.approx((0.9 + 0.9 + 0.1) / 3)


def test_small_rules_of_the_leaderboard():
    """relative_to at and around the root, the checkpoint's epoch from the reports that
    carried one, a missing epochs count, a NaN metric of one epoch kept, the rank column
    first."""
    from tune_food.results.leaderboard import _checkpoint_epoch, _planned, relative_to

    assert relative_to("/s/r/", "/s/r/") is not None
    assert relative_to("/s/r", "/s/r/") == "." and relative_to("/s/r", "/s/r") == "."
    assert relative_to("/s/r/t_1/ck", "/s/r//") == "t_1/ck"
    assert relative_to("/s/rX/t", "/s/rX") == "t"
    assert relative_to("/other/t", "/s/r") == "/other/t" and relative_to(None, "/s") is None
    h = pd.DataFrame({"epoch": [1, 2, 3], "checkpoint_saved": [True, None, False]})
    rec = TrialRecord("a", "TERMINATED", {"epochs": 3}, h, "/s/a", checkpoint="/s/a/ck")
    assert _checkpoint_epoch(rec) == 1
    assert _checkpoint_epoch(TrialRecord("a", "TERMINATED", {}, h, "/s/a", checkpoint=None)) \
        is None
    no_flag = TrialRecord("a", "TERMINATED", {}, h.drop(columns="checkpoint_saved"), "/s/a",
                          checkpoint="/s/a/ck")
    assert _checkpoint_epoch(no_flag) is None
    assert _planned(TrialRecord("a", "PENDING", {}, pd.DataFrame(), "/s/a")) == 0
    assert _planned(TrialRecord("a", "PENDING", {"epochs": 4.0}, pd.DataFrame(), "/s/a")) == 4
    kept = dedupe_history(pd.DataFrame({"epoch": [1, 2], "test_acc": [float("nan"), 0.5]}))
    assert list(kept["epoch"]) == [1, 2]
    board = make_leaderboard([record("a")], "test_acc", "max", KEYS, ROOT)
    assert board.columns[0] == "rank"


def test_compare_with_best_goes_past_trials_it_cannot_pair():
    """A ranked trial without predictions, or on other images, is skipped, not the end of
    the comparisons; an image listed twice under two paths counts once; p equal to alpha
    is a tie (p >= alpha); a board without ranks compares nothing."""
    sha = [f"h{i}" for i in range(10)]
    best = [True] * 10
    last = [False] * 3 + [True] * 7          # b = 3, c = 0: p = 2 / 2**3 = 0.25
    recs = [record(t, test_acc=a) for t, a in (("best", 0.9), ("none", 0.8), ("apart", 0.7),
                                               ("last", 0.6))]
    board = make_leaderboard(recs, "test_acc", "max", KEYS, ROOT)
    twice = _predictions(last[:1], sha[:1]).assign(image="another/path.jpg")
    preds = {"best": _predictions(best, sha),
             "apart": _predictions(best, [f"x{i}" for i in range(10)]),
             "last": pd.concat([_predictions(last, sha).assign(image="a.jpg"), twice])}
    out = compare_with_best(board, preds, "test", alpha=0.25)
    p = dict(zip(out["trial_id"], out["p_vs_best"]))
    tied = dict(zip(out["trial_id"], out["tied_with_best"]))
    assert pd.isna(p["none"]) and pd.isna(p["apart"])
    assert p["last"] == pytest.approx(0.25) and tied["last"]      # p == alpha: tied
    assert not compare_with_best(board, preds, "test", alpha=0.26).set_index(
        "trial_id")["tied_with_best"]["last"]
    unranked = compare_with_best(board.drop(columns="rank"), preds, "test")
    assert unranked["p_vs_best"].isna().all() and unranked["tied_with_best"].isna().all()


def test_equal_losses_keep_trial_order_in_a_one_column_sort():
    """Ranked by test_loss (its own tie-break), 40 trials in two groups of equal loss:
    within a group the order is the trials' (a stable sort; numpy's quicksort, the
    default, reorders equal keys from 17 of them on)."""
    recs = [record(f"t{i:02d}", test_acc=0.5, test_loss=0.5 if i < 20 else 0.4)
            for i in range(40)]
    board = make_leaderboard(recs, "test_loss", "min", KEYS, ROOT)
    assert list(board["trial_id"]) == [f"t{i:02d}" for i in list(range(20, 40)) + list(range(20))]


def test_configurations_with_equal_means_keep_their_order():
    """40 configurations in two groups of equal means: within a group in the order of
    their keys (a stable sort; numpy's default quicksort reorders equal keys)."""
    board = pd.DataFrame({"rank": pd.array(range(1, 81), dtype="Int64"),
                          "model": [f"m{i % 40:02d}" for i in range(80)],
                          "seed": [i // 40 for i in range(80)],
                          "test_acc": [0.5 if i % 40 < 20 else 0.6 for i in range(80)]})
    by = leaderboard_by_config(board, ["model", "seed"], "test_acc", "max")
    assert list(by["model"]) == [f"m{i:02d}" for i in list(range(20, 40)) + list(range(20))]
