"""The self-contained HTML report (``mnistlab report``): see :mod:`mnistlab.report.html`."""
