"""Restorers stage (paper sections 3 and 4): conditional EDM with DDPM++ (``edm``),
BF-DnCNN (``bfdncnn``) and a classical baseline (``classical``); training, checkpoints
and restoration of reconstructions."""
