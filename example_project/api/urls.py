from django.urls import path

from api import views

urlpatterns = [
    path("products/", views.ProductListAPI.as_view(), name="api-products"),
    path("search/", views.ProductSearchAPI.as_view(), name="api-search"),
    path("login/", views.login, name="api-login"),
]
