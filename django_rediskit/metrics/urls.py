"""``path("metrics/", include("django_rediskit.metrics.urls"))`` serves ``/metrics/``."""

from django.urls import path

from django_rediskit.metrics.views import prometheus_metrics

app_name = "rediskit_metrics"
urlpatterns = [path("", prometheus_metrics, name="prometheus")]
