"""Report stage (paper section 5 and appendix): tables, figures, metrics JSON, curves."""

from ..methods import label as display  # noqa: F401
