"""The one list of evaluated methods (paper section 5.1.1, methods 1 to 5, and the classical
denoisers of paper 003).

Each method is a set of images made from the plain reconstructions: ``plain`` itself, or
the output of a restorer. Everything that enumerates methods (CLI choices, the
workflow's targets and wildcard constraints, the report's order and labels) reads
this list.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    name: str  # match file stem, restored-file dataset name
    label: str  # how tables and figures name it
    restorer: str | None  # restorer that makes it (None: the plain reconstructions)
    trained: bool = False  # the restorer is trained by the restorers stage (has a checkpoint)
    requires: str | None = None  # an optional package; without it the method is skipped with a note
    weights: bool = False  # needs a local weights file (params restorers.<restorer>.weights; null: skipped)


METHODS: tuple[Method, ...] = (
    Method("plain", "Plain (Haim et al.)", None),
    Method("tv", "TV denoising", "tv"),
    Method("heat", "Heat equation", "heat"),
    Method("perona_malik", "Perona-Malik", "perona_malik"),
    Method("nlmeans", "Non-local means", "nlmeans"),
    Method("wavelet", "Wavelet (BayesShrink)", "wavelet"),
    Method("bm3d", "BM3D", "bm3d", requires="bm3d"),
    Method("restormer_real", "Restormer (real denoising)", "restormer_real", weights=True),
    Method("restormer_gaussian_blind", "Restormer (Gaussian, blind)", "restormer_gaussian_blind", weights=True),
    Method("restormer_deraining", "Restormer (deraining)", "restormer_deraining", weights=True),
    Method("bfdncnn", "BF-DnCNN", "bfdncnn", trained=True),
    Method("edm_single", "Ours single", "edm", trained=True),
    Method("edm_averaged", "Ours averaged", "edm", trained=True),
)
BY_NAME = {m.name: m for m in METHODS}
NAMES = [m.name for m in METHODS]
RESTORERS = list(dict.fromkeys(m.restorer for m in METHODS if m.restorer))
TRAINED = list(dict.fromkeys(m.restorer for m in METHODS if m.trained))


def label(name: str) -> str:
    return BY_NAME[name].label if name in BY_NAME else name


def restorer_of(name: str) -> str | None:
    return BY_NAME[name].restorer if name in BY_NAME else None


def methods_of(restorer: str) -> list[str]:
    return [m.name for m in METHODS if m.restorer == restorer]


def missing(restorer: str, section: dict | None = None) -> str | None:
    """Why ``restorer`` cannot run here (its optional package is absent, or its weights file is
    not named in its params ``section``), or None."""
    import importlib.util

    for m in METHODS:
        if m.restorer != restorer:
            continue
        if m.requires and importlib.util.find_spec(m.requires) is None:
            return f"the optional package {m.requires!r} is not installed (pip install '.[{m.requires}]')"
        if m.weights and not (section or {}).get("weights"):
            return (f"no weights file (params restorers.{restorer}.weights: the official checkpoint, which "
                    "cannot be redistributed)")
    return None


def weights_file(restorer: str, section: dict) -> str | None:
    """The local weights file a restorer reads, if it needs one and params name it."""
    return section.get("weights") if any(m.restorer == restorer and m.weights for m in METHODS) else None


def order(names) -> list[str]:
    """Names in the list's order; unknown names last, alphabetically."""
    return sorted(names, key=lambda n: (NAMES.index(n) if n in NAMES else len(NAMES), n))
