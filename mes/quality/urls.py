from django.urls import path

from . import views

app_name = "quality"

urlpatterns = [
    path("", views.nonconformance_list, name="nonconformances"),
    path("nc/<str:number>/", views.nonconformance_detail, name="nonconformance"),
    path("spc/", views.spc_list, name="spc"),
    path("spc/<str:routing>/<int:sequence>/<str:code>/", views.spc_detail, name="spc_detail"),
    path(
        "spc/<str:routing>/<int:sequence>/<str:code>/baseline/",
        views.spc_baseline,
        name="spc_baseline",
    ),
]
