"""The dataset setting's schedule (paper section 2; chosen by the dataset cost study,
``dataset.cost``).

* ``paper``: ``attack.train.epochs`` epochs of training, ``attack.reconstruct.iterations``
  iterations of reconstruction, snapshots at ``attack.reconstruct.snapshots``.
* ``fast``: ``dataset.fast.epochs`` epochs and reconstruction stopped at
  ``dataset.fast.iterations``, keeping the schedule's snapshots up to it (and one at the
  last iteration). Everything else (images, candidates, matching) is unchanged.
"""

from __future__ import annotations

import copy

from ..errors import UserError

SCHEDULES = ("paper", "fast")


def effective(cfg: dict) -> dict:
    """``cfg`` with the dataset schedule applied to its ``attack`` section (a copy)."""
    ds = cfg["dataset"]
    name = ds.get("schedule", "paper")
    if name == "paper":
        return cfg
    if name not in SCHEDULES:
        raise UserError(f"params dataset.schedule: {name!r}; expected one of {', '.join(SCHEDULES)}")
    fast = ds["fast"]
    out = copy.deepcopy(cfg)
    rc = out["attack"]["reconstruct"]
    if fast["iterations"] > rc["iterations"] or fast["epochs"] > out["attack"]["train"]["epochs"]:
        raise UserError(f"params dataset.fast: {fast} must not exceed the paper schedule's epochs "
                        f"({out['attack']['train']['epochs']}) and iterations ({rc['iterations']})")
    out["attack"]["train"]["epochs"] = fast["epochs"]
    rc["snapshots"] = sorted({s for s in rc["snapshots"] if s <= fast["iterations"]} | {fast["iterations"]})
    rc["iterations"] = fast["iterations"]
    return out
