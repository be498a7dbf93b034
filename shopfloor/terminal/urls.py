from django.urls import path

from . import views

app_name = "terminal"

urlpatterns = [
    path("", views.home, name="home"),
    path("setup/", views.setup, name="setup"),
    path("setup/<int:pk>/revoke/", views.revoke, name="revoke"),
    path("sign-in/", views.sign_in, name="sign_in"),
    path("sign-out/", views.sign_out, name="sign_out"),
    path("panel/", views.work_center_panel, name="panel"),
    path("scan/", views.scan, name="scan"),
    path("op/<int:pk>/", views.operation, name="operation"),
    path("op/<int:pk>/check/", views.check, name="check"),
    path("op/<int:pk>/live/", views.operation_live, name="operation_live"),
    path("op/<int:pk>/<str:action>/", views.act, name="act"),
    path("downtime/<int:pk>/", views.downtime, name="downtime"),
    path("machine/<str:code>/down/", views.machine_down, name="machine_down"),
    path("machine/<str:code>/up/", views.machine_up, name="machine_up"),
]
