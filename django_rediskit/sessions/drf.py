"""DRF endpoints for the device API (``pip install django-rediskit[drf]``).

``path("api/", include("django_rediskit.sessions.drf"))`` gives::

    GET    devices/                      the user's devices
    DELETE devices/<device_id>/          sign one out (404 if it is not one of the user's)
    POST   devices/revoke-others/        sign out every other device -> {"revoked": n}

This module imports without DRF installed (so scanning tools and ``include()`` of other modules
never break); including its URLs without DRF raises ImproperlyConfigured saying what to install.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.urls import URLPattern, path

from django_rediskit.sessions import devices

try:
    from rest_framework import permissions, status
    from rest_framework.response import Response
    from rest_framework.views import APIView
except ImportError:  # pragma: no cover - exercised by a test that hides DRF
    HAVE_DRF = False
else:
    HAVE_DRF = True


def _urlpatterns() -> list[URLPattern]:
    if not HAVE_DRF:
        raise ImproperlyConfigured(
            "django_rediskit.sessions.drf needs Django REST framework: "
            "pip install 'django-rediskit[drf]'."
        )

    class DeviceListView(APIView):  # type: ignore[misc]
        permission_classes = (permissions.IsAuthenticated,)

        def get(self, request: Any) -> Any:
            found = devices.list_devices(request.user, request=request)
            return Response([device.as_dict() for device in found])

    class DeviceDetailView(APIView):  # type: ignore[misc]
        permission_classes = (permissions.IsAuthenticated,)

        def delete(self, request: Any, device_id: str) -> Any:
            if not devices.revoke(request.user, device_id):
                return Response({"detail": "Not found."}, status=status.HTTP_404_NOT_FOUND)
            return Response(status=status.HTTP_204_NO_CONTENT)

    class RevokeOthersView(APIView):  # type: ignore[misc]
        permission_classes = (permissions.IsAuthenticated,)

        def post(self, request: Any) -> Any:
            return Response({"revoked": devices.revoke_others(request)})

    return [
        path("devices/", DeviceListView.as_view(), name="rediskit-devices"),
        path("devices/revoke-others/", RevokeOthersView.as_view(), name="rediskit-revoke-others"),
        path("devices/<str:device_id>/", DeviceDetailView.as_view(), name="rediskit-device-detail"),
    ]


def __getattr__(name: str) -> Any:
    """``urlpatterns`` is built on first access, so importing the module never needs DRF."""
    if name == "urlpatterns":
        return _urlpatterns()
    raise AttributeError(name)
