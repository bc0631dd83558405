"""``recon-restore plan``: the compute plan of a preset (jobs, FLOPs, GPU-hours, limits)."""
