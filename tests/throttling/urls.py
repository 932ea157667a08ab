"""Views for the throttle tests: DRF views with our throttles, plain views with @ratelimit."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from django_rediskit.throttling import drf
from django_rediskit.throttling.views import ratelimit


class ThreePerSecond(drf.UserRateThrottle):
    rate = "3/sec"


class ThreePerMinute(drf.UserRateThrottle):
    rate = "3/min"


class ClosedThrottle(drf.UserRateThrottle):
    rate = "3/min"
    fail_open = False


class Base(APIView):
    authentication_classes: list[Any] = []

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


class SecondView(Base):
    throttle_classes = [ThreePerSecond]


class MinuteView(Base):
    throttle_classes = [ThreePerMinute]


class ClosedView(Base):
    throttle_classes = [ClosedThrottle]


class UserView(APIView):
    throttle_classes = [drf.UserRateThrottle, drf.AnonRateThrottle]

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


class ScopedX(Base):
    throttle_classes = [drf.ScopedRateThrottle]
    throttle_scope = "x"


class ScopedY(Base):
    throttle_classes = [drf.ScopedRateThrottle]
    throttle_scope = "y"


class Unscoped(Base):
    throttle_classes = [drf.ScopedRateThrottle]


class Expensive(Base):
    throttle_classes = [drf.ScopedRateThrottle]
    throttle_scope = "x"
    throttle_cost = 2


@ratelimit("2/min", key="ip")
def limited(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


@ratelimit("2/min", key="ip", fail_open=False, method=["POST"], scope="login")
def login(request: HttpRequest) -> HttpResponse:
    return HttpResponse("login")


@ratelimit("1/min", key=lambda request: request.GET.get("k"), block=False)
def soft(request: HttpRequest) -> HttpResponse:
    return HttpResponse("limited" if request.limited else "fresh")  # type: ignore[attr-defined]


urlpatterns = [
    path("second/", SecondView.as_view()),
    path("minute/", MinuteView.as_view()),
    path("closed/", ClosedView.as_view()),
    path("user/", UserView.as_view()),
    path("x/", ScopedX.as_view()),
    path("y/", ScopedY.as_view()),
    path("unscoped/", Unscoped.as_view()),
    path("expensive/", Expensive.as_view()),
    path("limited/", limited),
    path("login/", login),
    path("soft/", soft),
]
