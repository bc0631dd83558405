"""Report stage (paper section 5 and appendix): tables, figures, metrics JSON, curves."""

METHOD_NAMES = {
    "plain": "Plain (Haim et al.)",
    "tv": "TV denoising",
    "bfdncnn": "BF-DnCNN",
    "edm_single": "Ours single",
    "edm_averaged": "Ours averaged",
}


def display(method: str) -> str:
    return METHOD_NAMES.get(method, method)
