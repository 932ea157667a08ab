"""Metrics fed by every feature, exported to Prometheus, OpenTelemetry, the Debug Toolbar and
``rediskit_info --watch``.

The features call the hooks in :mod:`django_rediskit.metrics.events` where their events happen.
Each hook first reads one module-level boolean, ``events.ENABLED``, and returns at once when no
exporter is configured, so a site without metrics pays one attribute read per event. Exporters
are *sinks* (:class:`events.Sink`) switched on from ``REDISKIT["METRICS"]`` when the app is
ready (:func:`django_rediskit.metrics.setup.configure`).

Hit and miss counts are not hooked at all: the cache already counts them per alias
(``backend.stats``), and the exporters read those counters when they are scraped.

This package imports nothing but the standard library at import time, because the connection
policy imports :mod:`events` on every process start.
"""
