"""The sweep folder's contract (tune_food.sweepdir): the status words, the record of
``sweep.json`` and the ``sweep.json`` shapes earlier versions wrote."""

import json

import pandas as pd

from tune_food.sweepdir.status import RANKED_STATUSES, SweepStatus, TrialStatus


def test_status_members_are_written_as_their_words(tmp_path):
    """A member goes wherever its word went: JSON, f-strings, CSV cells, comparisons."""
    assert json.dumps({"status": SweepStatus.FINISHED_WITH_ERRORS}) == \
        '{"status": "finished with errors"}'
    assert f"{SweepStatus.INTERRUPTED} / {TrialStatus.NOT_STARTED}" == \
        "interrupted / NOT_STARTED"
    assert str(TrialStatus.EARLY_STOPPED) == "EARLY_STOPPED"
    assert [s.value for s in SweepStatus] == ["running", "interrupted", "finished",
                                              "finished with errors", "failed"]
    assert [s.value for s in TrialStatus] == ["TERMINATED", "EARLY_STOPPED", "INTERRUPTED",
                                              "NOT_STARTED", "ERROR"]
    assert RANKED_STATUSES == ("TERMINATED", "EARLY_STOPPED")
    pd.DataFrame({"status": list(TrialStatus)}).to_csv(tmp_path / "t.csv", index=False)
    assert (tmp_path / "t.csv").read_text().split() == ["status"] + [s.value for s in TrialStatus]
    assert SweepStatus("finished") is SweepStatus.FINISHED
    # a word read back from a file finds its member's entry (dicts keyed by members)
    assert {SweepStatus.FINISHED_WITH_ERRORS: 1}["finished with errors"] == 1
