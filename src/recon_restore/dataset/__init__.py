"""Dataset stage (paper sections 2 and 3): wave files (which pool images each run trains on), shard jobs (train + reconstruct +
match), HDF5 shards with a manifest, and the balanced on-the-fly sampler."""
