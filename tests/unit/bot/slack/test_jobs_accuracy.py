"""`/train jobs` carries one line on how close finished runs came to their quotes (issue 13)."""

from __future__ import annotations

import json

from bot.slack.blocks import jobs as BJ
from tests.support.slack_values import job_view
from workers.rules.accuracy import summary


def test_the_jobs_list_ends_with_the_accuracy_line():
    line = summary([("j-a", 4.0), ("j-b", -9.0), ("j-c", 22.0)]).line()
    blocks = BJ.jobs_blocks([job_view(job_id="j-000001")], accuracy=line)
    text = json.dumps(blocks)
    assert "median |error| 9% over 3 finished runs" in text and "worst j-c +22%" in text
    assert "quote accuracy" in json.dumps(BJ.jobs_blocks([], accuracy="quote accuracy: none"))
