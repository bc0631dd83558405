"""Noise2Noise denoisers (Lehtinen et al. 2018; project papers 002 and 004) as baselines.

The Noise2Noise U-Net (``network``) trained on the pool images with synthetic corruption
(``corruption``: Gaussian, Poisson, multiplicative Bernoulli, random-valued impulse, text),
with noisy targets (N2N) or clean targets (N2C) under L2, L1 or annealed L0 (``loss``); and
recon2recon, the Noise2Noise idea applied to this task: pairs of two different noisy
reconstructions of one augmented training image, never a clean image (``data``). Which
variants are evaluated is ``restorers.n2n.evaluate`` in params.yaml; their names are parsed
by ``methods.parse``.
"""
