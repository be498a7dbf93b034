from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import health, metrics, views

urlpatterns = [
    path("", views.home, name="home"),
    path("work-orders/", views.work_order_list, name="work_order_list"),
    path("work-orders/<str:number>/", views.work_order_detail, name="work_order_detail"),
    path(
        "work-orders/<str:number>/traveler/", views.work_order_traveler, name="work_order_traveler"
    ),
    path("machines/", views.machine_list, name="machine_list"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("erp_sync.api.urls")),
    path("terminal/", include("shopfloor.terminal.urls")),
    path("quality/", include("mes.quality.urls")),
    path("", include("mes.performance.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
]

# JSON in the contract's shape under /api/, pages elsewhere (erp_sync.api.exceptions).
handler400 = "erp_sync.api.exceptions.json_bad_request"
handler403 = "erp_sync.api.exceptions.json_permission_denied"
handler404 = "erp_sync.api.exceptions.json_not_found"
handler500 = "erp_sync.api.exceptions.json_server_error"
