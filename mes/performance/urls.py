from django.urls import path

from . import views

app_name = "performance"

urlpatterns = [
    path("board/", views.plant_board, name="board"),
    path("performance/", views.oee_page, name="oee"),
    path("performance/downtime/", views.downtime_page, name="downtime"),
    path("performance/schedule/", views.schedule_page, name="schedule"),
    path("performance/machines/<str:code>/timeline/", views.machine_timeline, name="timeline"),
]
