"""The Prometheus scrape endpoint (mount ``django_rediskit.metrics.urls``).

It exposes whatever prometheus-client holds, so it is protected like any operational endpoint:
``REDISKIT["METRICS"]["PROMETHEUS"]`` off answers 404, and a site restricts the URL (network
policy, or a wrapping view) as it does for its other internals.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from django_rediskit.metrics import setup


@require_GET
def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    sink = setup.prometheus_sink()
    if sink is None:
        raise Http404("Prometheus metrics are off (REDISKIT['METRICS']['PROMETHEUS']).")
    from django_rediskit.metrics.prometheus import exposition

    sink.sync_stats()  # this worker's own latest hits and misses (multiprocess mode)
    body, content_type = exposition()
    return HttpResponse(body, content_type=content_type)
