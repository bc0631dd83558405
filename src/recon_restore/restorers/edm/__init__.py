"""Conditional EDM restorer (paper section 3), in EDM's shape: network (DDPM++),
preconditioning, loss, augmentation labels (dataset.augment) and the Heun sampler."""

from .loss import edm_loss
from .network import DDPMpp
from .precond import EDMPrecond, coefficients
from .sampler import heun_sample, sigma_steps

__all__ = ["DDPMpp", "EDMPrecond", "coefficients", "edm_loss", "heun_sample", "sigma_steps"]
