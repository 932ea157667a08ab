from django.urls import path
from rest_framework.authtoken.views import obtain_auth_token

from api import views

urlpatterns = [
    path("products/", views.ProductListAPI.as_view(), name="api-products"),
    path("products/<int:pk>/", views.ProductDetailAPI.as_view(), name="api-product"),
    path("search/", views.ProductSearchAPI.as_view(), name="api-search"),
    path("limited/", views.LimitedAPI.as_view(), name="api-limited"),
    # POST username + password -> {"token": ...}; failed attempts count toward LOGIN_RATES.
    path("token/", obtain_auth_token, name="api-token"),
]
