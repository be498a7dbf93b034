"""The baselines measured beside the API in bench/api.py.

- ``floor``: a plain Django view returning a constant JSON body (what the framework costs).
- ``DrfWorkOrderList``: the straightforward DRF list most projects ship - a ModelSerializer
  with nested operations over the same rows, same authentication and permissions.
"""

from django.http import HttpResponse
from rest_framework import generics, pagination, serializers

from erp_sync.auth import BearerTokenAuthentication, ErpScope
from mes.models import Operation, WorkOrder

BODY = b'{"results":[],"next":null}'


def floor(request):
    return HttpResponse(BODY, content_type="application/json")


class OperationSerializer(serializers.ModelSerializer):
    work_center = serializers.SlugRelatedField(slug_field="code", read_only=True)
    machine = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = Operation
        fields = [
            "sequence",
            "name",
            "work_center",
            "machine",
            "status",
            "quantity_good",
            "quantity_scrap",
            "planned_start",
            "planned_end",
            "actual_start",
            "actual_end",
        ]


class WorkOrderSerializer(serializers.ModelSerializer):
    product = serializers.SlugRelatedField(slug_field="code", read_only=True)
    routing = serializers.SlugRelatedField(slug_field="code", read_only=True)
    operations = OperationSerializer(many=True, read_only=True)

    class Meta:
        model = WorkOrder
        fields = [
            "number",
            "product",
            "routing",
            "quantity",
            "due_date",
            "priority",
            "status",
            "quantity_good",
            "quantity_scrap",
            "actual_start",
            "actual_end",
            "operations",
            "updated_at",
        ]


class Page(pagination.CursorPagination):
    ordering = "number"
    page_size_query_param = "page_size"
    max_page_size = 500


class DrfWorkOrderList(generics.ListAPIView):
    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [ErpScope]
    serializer_class = WorkOrderSerializer
    pagination_class = Page
    queryset = WorkOrder.objects.select_related("product", "routing").prefetch_related(
        "operations__work_center", "operations__machine"
    )
