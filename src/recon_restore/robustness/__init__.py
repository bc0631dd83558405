"""Robustness stage (paper 004, section 4): adversarial attacks on the learned restorers.

For each trained restorer, bounded perturbations of its input that maximise its output
error (``pgd``), on the evaluation's plain reconstructions and on inputs with the
restorer's own training corruption (``inputs``); per-budget PSNR/SSIM drops and the PSNR-
ratio histograms of paper 004 (``study``)."""
