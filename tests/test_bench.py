"""``recon-restore bench workflow``: job-seconds per rule from a Snakemake log."""

import pytest

from recon_restore.bench.workflow import rule_seconds, table
from recon_restore.errors import UserError

LOG = """Select jobs to execute...
[Sat Dec  5 07:42:36 2026]
localrule restorers_train:
    output: a.pt
    jobid: 3
    wildcards: method=edm

[Sat Dec  5 07:42:40 2026]
rule evaluate_match:
    jobid: 7

[Sat Dec  5 07:42:50 2026]
Finished jobid: 7 (Rule: evaluate_match)
[Sat Dec  5 07:43:36 2026]
Finished jobid: 3 (Rule: restorers_train)
[Sat Dec  5 07:43:37 2026]
rule evaluate_match:
    jobid: 8
[Sat Dec  5 07:43:41 2026]
Finished jobid: 8 (Rule: evaluate_match)
"""


def test_job_seconds_per_rule_from_a_snakemake_log(tmp_path):
    (tmp_path / "s.log").write_text(LOG)
    rules, wall = rule_seconds(tmp_path / "s.log")
    assert rules["restorers_train"]["jobs"] == 1 and rules["restorers_train"]["seconds"] == 60
    assert rules["evaluate_match"]["jobs"] == 2 and rules["evaluate_match"]["seconds"] == 14
    assert wall == 65
    t = table(rules, wall).splitlines()
    assert t[2].startswith("| restorers_train | 1 | 60 |") and "1.1 min wall" in t[-1]
    (tmp_path / "empty.log").write_text("nothing ran\n")
    with pytest.raises(UserError, match="no finished jobs"):
        rule_seconds(tmp_path / "empty.log")
