"""Interpretability: Grad-CAM, saliency, filters, feature maps and gradient-flow monitoring.

    >>> from mnistlab.explain import explain_run, gradient_flow_plot
    >>> flow = gradient_flow_plot("runs/simple")      # the gradient norms training logged, drawn
    >>> flow["file"], flow["warnings"]
    ('gradient_flow.png', [])

``explain_run("runs/simple")`` draws every figure for four chosen test images (see :mod:`.run`).

Modules: ``gradcam`` (attributions, captum), ``visualize`` (figures, matplotlib), ``attention``
(self-attention maps, for models that have them), ``run`` (writes a run's figures). The gradient-norm monitor the trainer uses lives in
``mnistlab.training.gradflow``; this package only plots what it logged. The names below are
imported lazily, so importing the package needs neither captum nor matplotlib.
"""

from __future__ import annotations

__all__ = ["explain_run", "gradient_flow_plot"]


def __getattr__(name: str):
    if name in __all__:
        from mnistlab.explain import run

        return getattr(run, name)
    raise AttributeError(f"module 'mnistlab.explain' has no attribute {name!r}")
