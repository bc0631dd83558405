"""recon-restore: reconstruct training images from a trained classifier and restore them.

Reference implementation of "Image restoration for training data reconstructed from
trained neural networks": Haim et al.'s KKT reconstruction attack (``attack``), the
(noisy reconstruction, original) dataset (``dataset``), conditional EDM and BF-DnCNN
restorers (``restorers``), the ciFAIR-10 evaluation (``evaluate``) and the paper's
tables and figures (``report``). The image geometry comes from the data source (``data.spec``).
"""

__version__ = "0.1.0"
