"""Request counts, errors by status and a latency histogram, in Prometheus text format.

    >>> m = Metrics()
    >>> m.observe("POST", "/v1/predict", 200, 0.004)
    >>> 'mnistlab_http_requests_total{method="POST",route="/v1/predict",status="200"} 1' in m.render()
    True

Hand-written (a few lines) rather than a dependency: the exposition format is plain text
(https://prometheus.io/docs/instrumenting/exposition_formats/). Labels use the route's template
(``/v2/models/{name}/infer``, ``unmatched`` for any path no route has), never the raw path, and a
method outside ``METHODS`` is counted as ``other``: a scanner cannot grow the series without
bound. Each uvicorn worker counts its own requests.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
# HTTP's own methods (RFC 9110) and PATCH; any other token a client sends is labelled "other".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.buckets: dict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self.sums: dict[str, float] = defaultdict(float)
        self.images = 0

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "other"
        with self._lock:
            self.requests[(method, route, status)] += 1
            self.buckets[route][bisect.bisect_left(BUCKETS, seconds)] += 1
            self.sums[route] += seconds

    def count_images(self, n: int) -> None:
        with self._lock:
            self.images += n

    def render(self) -> str:
        with self._lock:
            lines = ["# HELP mnistlab_http_requests_total HTTP requests by method, route and status.",
                     "# TYPE mnistlab_http_requests_total counter"]
            for (method, route, status), n in sorted(self.requests.items()):
                lines.append(f'mnistlab_http_requests_total{{method="{method}",route="{route}",status="{status}"}} {n}')
            lines += ["# HELP mnistlab_http_errors_total HTTP responses with a status of 400 or more, by status.",
                      "# TYPE mnistlab_http_errors_total counter"]
            errors: dict[int, int] = defaultdict(int)
            for (_, _, status), n in self.requests.items():
                if status >= 400:
                    errors[status] += n
            lines += [f'mnistlab_http_errors_total{{status="{s}"}} {n}' for s, n in sorted(errors.items())]
            lines += ["# HELP mnistlab_http_request_duration_seconds Time from request to response, by route.",
                      "# TYPE mnistlab_http_request_duration_seconds histogram"]
            for route, counts in sorted(self.buckets.items()):
                total = 0
                for bound, n in zip([*BUCKETS, float("inf")], counts):
                    total += n
                    le = "+Inf" if bound == float("inf") else repr(bound)
                    lines.append(f'mnistlab_http_request_duration_seconds_bucket{{route="{route}",le="{le}"}} {total}')
                lines.append(f'mnistlab_http_request_duration_seconds_sum{{route="{route}"}} {self.sums[route]:.6f}')
                lines.append(f'mnistlab_http_request_duration_seconds_count{{route="{route}"}} {total}')
            lines += ["# HELP mnistlab_images_classified_total Images classified.",
                      "# TYPE mnistlab_images_classified_total counter", f"mnistlab_images_classified_total {self.images}"]
        return "\n".join(lines) + "\n"
