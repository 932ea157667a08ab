from django.contrib import admin
from django.urls import include, path

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
