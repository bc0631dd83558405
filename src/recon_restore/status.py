"""The status of a reconstruction run, one type everywhere (attack runs files, dataset
shards, the evaluation's tables): stored as its integer code, named by its value."""

from __future__ import annotations

from enum import IntEnum


class RunStatus(IntEnum):
    OK = 0  # ran to the end
    ABORTED = 1  # stopped as hopeless at the abort iteration (evaluation setting)
    FAILED = 2  # NaN/inf in the objective, or its target network failed to train

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def of(cls, name: str) -> "RunStatus":
        return cls[name.upper()]

    @classmethod
    def codes(cls) -> dict[str, int]:
        return {s.label: int(s) for s in cls}
