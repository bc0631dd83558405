"""Evaluate stage (paper section 5): the evaluation network's reconstruction runs are
collected and postprocessed (plain reconstructions), restored by every method, and each
training image's best match is found by SSIM and by HaarPSI."""
