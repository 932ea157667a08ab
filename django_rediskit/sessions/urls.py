"""``path("account/", include("django_rediskit.sessions.urls"))`` gives ``account/devices/``."""

from django.urls import path

from django_rediskit.sessions import views

app_name = "rediskit_sessions"
urlpatterns = [path("devices/", views.device_list, name="devices")]
