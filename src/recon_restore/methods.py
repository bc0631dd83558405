"""The one list of evaluated methods and the restorers that make them (paper section 5.1.1,
methods 1 to 5; the classical denoisers of paper 003; the Noise2Noise denoisers of papers
002 and 004; paper 001's two-stage adaptation): the registry.

Each method is a set of images made from the plain reconstructions: ``plain`` itself, or
an output of a restorer. A restorer's ``kind`` names the module under
``recon_restore.restorers`` whose ``RESTORER`` class implements it (``restorers.base``:
loading, restoring, its cost, its training recipe). Everything that enumerates methods or
asks what a restorer is (CLI choices, the workflow's targets, wildcard constraints and
threads, the plan, the report's order, labels and figures) reads this list; nothing
outside it branches on a method's name. Adding a restorer: one module, one line here,
one params section (docs/extending.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    name: str  # match file stem, restored-file dataset name
    label: str  # how tables and figures name it
    restorer: str | None  # restorer that makes it (None: the plain reconstructions)
    trained: bool = False  # the restorer is trained by the restorers stage (has a checkpoint)
    requires: str | None = None  # an optional package; without it the method is skipped with a note
    weights: bool = False  # needs a local weights file (params restorers.<restorer>.weights; null: skipped)
    adapted_from: str | None = None  # stage 2 of paper 001's two-stage training, from this trained restorer
    kind: str | None = None  # module under recon_restore.restorers implementing the restorer (its RESTORER class)
    variant: str | None = None  # what the kind makes of it (a classical denoiser, a Restormer setting)
    output: str = "restored"  # which of the restorer's outputs this method is (diffusion: single | averaged)
    figures: frozenset = frozenset()  # paper figures that show it beside plain: fig3 (the headline), fig4, fig5
    prior: str | None = None  # a trained restorer whose checkpoint this one runs (plug-and-play's denoiser)


CORE: tuple[Method, ...] = (
    Method("plain", "Plain (Haim et al.)", None, figures=frozenset({"fig5"})),
    Method("tv", "TV denoising", "tv", kind="classical", variant="tv"),
    Method("heat", "Heat equation", "heat", kind="classical", variant="heat"),
    Method("tikhonov", "Tikhonov", "tikhonov", kind="classical", variant="tikhonov"),
    Method("perona_malik", "Perona-Malik", "perona_malik", kind="classical", variant="perona_malik"),
    Method("nlmeans", "Non-local means", "nlmeans", kind="classical", variant="nlmeans"),
    Method("wavelet", "Wavelet (BayesShrink)", "wavelet", kind="classical", variant="wavelet"),
    Method("bm3d", "BM3D", "bm3d", requires="bm3d", kind="classical", variant="bm3d"),
    Method("restormer_real", "Restormer (real denoising)", "restormer_real", weights=True, kind="restormer", variant="real",
           figures=frozenset({"fig4"})),
    Method("restormer_gaussian_blind", "Restormer (Gaussian, blind)", "restormer_gaussian_blind", weights=True, kind="restormer",
           variant="gaussian_blind"),
    Method("restormer_deraining", "Restormer (deraining)", "restormer_deraining", weights=True, kind="restormer", variant="deraining"),
    Method("bfdncnn", "BF-DnCNN", "bfdncnn", trained=True, kind="bfdncnn"),
    Method("pnp", "Plug-and-play (BF-DnCNN prior)", "pnp", kind="pnp", prior="bfdncnn"),
    Method("edm_single", "Ours single", "edm", trained=True, kind="edm.restorer", output="single", figures=frozenset({"fig4", "fig5"})),
    Method("edm_averaged", "Ours averaged", "edm", trained=True, kind="edm.restorer", output="averaged",
           figures=frozenset({"fig3", "fig4", "fig5"})),
)
"""Every preset evaluates these (an optional one is skipped with a note)."""


# ---- Noise2Noise variants (papers 002 and 004) ---------------------------------------------
# ``n2n_<corruption>_<loss>``: synthetic corruption of the pool images, noisy targets (Noise2Noise);
# ``n2c_<corruption>_<loss>``: the same corruption, clean targets (Noise2Clean);
# ``recon2recon_<loss>``: two different noisy reconstructions of one augmented training image from
# the dataset shards, no clean image (this project's experiment). Each is its own restorer (one
# checkpoint); all read ``restorers.n2n`` (network, train, corruptions, recon2recon).

CORRUPTIONS = ("gaussian", "poisson", "bernoulli", "impulse", "photon", "text")
LOSSES = ("l2", "l1", "l0")
_RE = re.compile(rf"^(?:(n2n|n2c)_({'|'.join(CORRUPTIONS)})|(recon2recon))_({'|'.join(LOSSES)})$")
_LOSS_LABEL = {"l2": "L2", "l1": "L1", "l0": "annealed L0"}
_CORRUPTION_LABEL = {"gaussian": "Gaussian", "poisson": "Poisson", "bernoulli": "Bernoulli", "impulse": "impulse",
                     "photon": "Poisson, photons ~ NB", "text": "text"}


@dataclass(frozen=True)
class Variant:
    name: str
    target: str  # noisy | clean | recon
    corruption: str | None  # None for recon2recon
    loss: str

    @property
    def label(self) -> str:
        if self.target == "recon":
            return f"recon2recon ({_LOSS_LABEL[self.loss]})"
        kind = "N2N" if self.target == "noisy" else "N2C"
        return f"{kind} {_CORRUPTION_LABEL[self.corruption]} ({_LOSS_LABEL[self.loss]})"


def parse(name: str) -> Variant | None:
    """The variant a name stands for, or None if it is not a Noise2Noise variant name."""
    m = _RE.match(name)
    if not m:
        return None
    kind, corruption, r2r, loss = m.groups()
    target = "recon" if r2r else ("noisy" if kind == "n2n" else "clean")
    return Variant(name, target, corruption, loss)


def _variants() -> tuple[Method, ...]:
    names = [f"{t}_{c}_{l}" for t in ("n2n", "n2c") for c in CORRUPTIONS for l in LOSSES] + [f"recon2recon_{l}" for l in LOSSES]
    return tuple(Method(n, parse(n).label, n, trained=True, kind="n2n.restorer") for n in names)


VARIANTS = _variants()
"""Noise2Noise U-Nets (papers 002, 004) and recon2recon: a preset evaluates those named in
``restorers.n2n.evaluate``; each is a trained restorer of its own."""
ADAPTED: tuple[Method, ...] = (
    Method("bfdncnn_adapted", "BF-DnCNN, adapted (two-stage)", "bfdncnn_adapted", trained=True, adapted_from="bfdncnn",
           kind="bfdncnn"),
)
"""Paper 001's two-stage adaptation to the evaluation setting's reconstructions
(``restorers.adapt.enabled``)."""
METHODS: tuple[Method, ...] = CORE + ADAPTED + VARIANTS  # every method a preset may evaluate
BY_NAME = {m.name: m for m in METHODS}
NAMES = [m.name for m in METHODS]  # CLI choices
RESTORERS = list(dict.fromkeys(m.restorer for m in METHODS if m.restorer))
TRAINED = list(dict.fromkeys(m.restorer for m in METHODS if m.trained))
_SAMPLED = next(i for i, m in enumerate(CORE) if m.output != "restored" and m.restorer)  # the diffusion restorer's first
_RANK = {n: i for i, n in enumerate([m.name for m in CORE[:_SAMPLED] + ADAPTED + VARIANTS + CORE[_SAMPLED:]])}


def active(restorers_cfg: dict) -> list[Method]:
    """The methods a preset evaluates, in report order: plain and the core methods whose
    restorer has a params section, and the Noise2Noise variants its ``restorers`` section
    names (``n2n.evaluate``)."""
    chosen = list((restorers_cfg.get("n2n") or {}).get("evaluate") or [])
    if (restorers_cfg.get("adapt") or {}).get("enabled"):
        chosen += [m.name for m in ADAPTED]
    core = [m.name for m in CORE if m.restorer is None or section_of(m.restorer) in restorers_cfg]
    return [BY_NAME[n] for n in order(core + chosen)]


def check_sections(restorers_cfg: dict, source: str = "params.yaml", preset: str = "") -> None:
    """Refuse a ``restorers`` section that no restorer of this list reads (a typo would
    otherwise drop a method silently), naming the closest restorer."""
    import difflib

    from .errors import UserError

    known = sorted({section_of(r) for r in RESTORERS})
    for key in restorers_cfg:
        if key not in known:
            hint = difflib.get_close_matches(key, known, n=1)
            raise UserError(f"{source}: key 'presets.{preset}.restorers.{key}': not a restorer of the methods list (methods.py)"
                            + (f"; did you mean '{hint[0]}'?" if hint else f"; expected one of {', '.join(known)}"))


def names(restorers_cfg: dict) -> list[str]:
    return [m.name for m in active(restorers_cfg)]


def study_methods(restorers_cfg: dict, chosen: list[str] | None) -> list[str]:
    """A study's methods: every method of the list (``chosen`` None), or plain and the methods
    of the ``chosen`` restorers that the list holds, in report order."""
    if chosen is None:
        return names(restorers_cfg)
    listed = names(restorers_cfg)
    return order(["plain"] + [m for r in chosen for m in methods_of(r) if m in listed])


def study_restorers(restorers_cfg: dict, study: list[str]) -> list[str]:
    """The restorers that make a study's methods ``study``."""
    return [r for r in restorers(restorers_cfg) if set(methods_of(r)) & set(study)]


def restorers(restorers_cfg: dict) -> list[str]:
    return list(dict.fromkeys(m.restorer for m in active(restorers_cfg) if m.restorer))


def trained(restorers_cfg: dict) -> list[str]:
    return list(dict.fromkeys(m.restorer for m in active(restorers_cfg) if m.trained))


def section_of(restorer: str) -> str:
    """The ``restorers`` params section a restorer reads (every Noise2Noise variant: ``n2n``;
    an adapted restorer: ``adapt``)."""
    if restorer in {m.restorer for m in VARIANTS}:
        return "n2n"
    return "adapt" if restorer in {m.restorer for m in ADAPTED} else restorer


def adapted_from(restorer: str) -> str | None:
    """The stage-1 restorer an adapted restorer starts from (None: not adapted)."""
    return next((m.adapted_from for m in ADAPTED if m.restorer == restorer), None)


def label(name: str) -> str:
    return BY_NAME[name].label if name in BY_NAME else name


def restorer_of(name: str) -> str | None:
    return BY_NAME[name].restorer if name in BY_NAME else None


def methods_of(restorer: str) -> list[str]:
    return [m.name for m in METHODS if m.restorer == restorer]


def entry(restorer: str) -> Method:
    """The registry line of a restorer (its first method)."""
    for m in METHODS:
        if m.restorer == restorer:
            return m
    raise KeyError(f"unknown restorer {restorer!r}; expected one of {', '.join(RESTORERS)}")


def checkpoint_of(restorer: str) -> str | None:
    """The trained restorer whose checkpoint ``restorer`` loads: itself if trained, its prior
    (plug-and-play), or None (no checkpoint)."""
    m = entry(restorer)
    return restorer if m.trained else m.prior


def kind_module(restorer: str) -> str:
    """The module implementing ``restorer`` (its import closure is the restorer's code)."""
    return f"recon_restore.restorers.{entry(restorer).kind}"


def restorer_class(restorer: str):
    """The class implementing ``restorer`` (``restorers.base.Restorer``), imported on demand."""
    import importlib

    return importlib.import_module(kind_module(restorer)).RESTORER


def restorer(name: str, restorers_cfg: dict, spec=None):
    """The restorer ``name`` with the preset's ``restorers`` params and the data's image spec
    (``data.spec.ImageSpec``; None: the paper's)."""
    return restorer_class(name)(name, restorers_cfg, spec)


def in_figure(figure: str, names) -> list[str]:
    """The methods among ``names`` that ``figure`` shows, in report order."""
    return [n for n in order(names) if n in BY_NAME and figure in BY_NAME[n].figures]


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
    """Names in report order (the core list, Noise2Noise variants before the diffusion
    restorer), without repeats; unknown names last, alphabetically."""
    return sorted(dict.fromkeys(names), key=lambda n: (_RANK.get(n, len(_RANK)), n))
