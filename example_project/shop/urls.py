from django.urls import path

from shop import views

urlpatterns = [
    path("", views.home, name="home"),
    path("shop/", views.product_list, name="product-list"),
    path("category/<int:pk>/", views.category_detail, name="category-detail"),
    path("product/<int:pk>/", views.product_detail, name="product-detail"),
    path("product/<int:pk>/uncached/", views.product_detail_uncached, name="product-uncached"),
    path("async/product/<int:pk>/", views.product_detail_async, name="product-async"),
]
