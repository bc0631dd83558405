"""Data stage: CIFAR-10 (verified), ciFAIR-10 test, and the offline demo patch set.

Writes two image sets per preset: the *pool* the dataset runs sample from (CIFAR-10 train
or demo pool) and the *held-out* images the evaluation network trains on (ciFAIR-10 test
or held-out demo patches). See ``store.py`` for the file layout.
"""
