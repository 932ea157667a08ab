from django.urls import include, path

urlpatterns = [path("metrics/", include("django_rediskit.metrics.urls"))]
