"""Defences study (issue "what protects training data", item 3): which training choices of the
released network reduce what the KKT attack and the restorers recover, and at what cost in
accuracy. Each setting (weight decay, DP-SGD at a privacy budget, training length) trains one
evaluation network on the same images from the same initial draw as the undefended one
(``attack/evaluation.py``), whose runs, restorations and best matches follow paper section 5.1
unchanged; the table sets leakage beside test accuracy (``table.py``)."""
