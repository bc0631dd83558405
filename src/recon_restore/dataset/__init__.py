"""Dataset stage (paper sections 2 and 3): run plans, shard jobs (train + reconstruct +
match), HDF5 shards with a manifest, and the balanced on-the-fly sampler."""
