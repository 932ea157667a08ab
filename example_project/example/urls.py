from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("api.urls")),
    path("", include("shop.urls")),
]

# Login, "Your devices" page and its JSON API (django_rediskit.sessions).
urlpatterns += [
    path("accounts/", include("django.contrib.auth.urls")),
    path("account/", include("django_rediskit.sessions.urls")),
    path("api/", include("django_rediskit.sessions.drf")),
]

if not settings.DEBUG:
    # `make serve` (DEBUG=0) serves the collected static files itself: a demo has no CDN or
    # front web server. A real deployment serves STATIC_ROOT from one of those instead.
    urlpatterns += [
        re_path(r"^static/(?P<path>.*)$", serve, {"document_root": settings.STATIC_ROOT})
    ]
