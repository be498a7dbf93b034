from django.urls import include, path

from . import views

urlpatterns = [
    path("bench/floor/", views.floor),
    path("bench/drf-list/", views.DrfWorkOrderList.as_view()),
    path("", include("mes.urls")),
]
