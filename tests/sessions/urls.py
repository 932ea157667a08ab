from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.urls import include, path


def whoami(request: HttpRequest) -> HttpResponse:
    user = request.user
    return HttpResponse(user.get_username() if user.is_authenticated else "anonymous")


def touch_session(request: HttpRequest) -> HttpResponse:
    request.session["n"] = request.session.get("n", 0) + 1
    return HttpResponse(str(request.session["n"]))


def read_session(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(request.session.get("n", "none")))


urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(template_name="sessions_test/login.html")),
    path(
        "password/",
        auth_views.PasswordChangeView.as_view(
            template_name="sessions_test/login.html", success_url="/whoami/"
        ),
    ),
    path("whoami/", whoami),
    path("touch/", touch_session),
    path("read/", read_session),
    path("account/", include("django_rediskit.sessions.urls")),
    path("api/", include("django_rediskit.sessions.drf")),
]
