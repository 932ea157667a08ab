from django.urls import path

from shop import views

urlpatterns = [
    path("", views.product_list, name="product-list"),
    path("category/<int:pk>/", views.category_detail, name="category-detail"),
    path("product/<int:pk>/", views.product_detail, name="product-detail"),
]
