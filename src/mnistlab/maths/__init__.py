"""Pure maths on logits and probabilities, the ground floor: numpy (scipy, sklearn), no frameworks, no run directories.

* :mod:`.metrics` — softmax, accuracy, NLL, ECE, per-class scores, confusions;
* :mod:`.calibration` — reliability bins and temperature scaling;
* :mod:`.combine` — an ensemble's weighted mean of its members' probabilities;
* :mod:`.spread` — mean and sample standard deviation over seeds.

Nothing here imports from mnistlab outside this package (:mod:`mnistlab.errors` at most), so every floor may use it.
"""
