from mes import services
from mes.choices import OperationStatus, WorkOrderStatus


def test_full_happy_path(work_order, operator):
    ops = list(work_order.operations.order_by("sequence"))
    for op in ops:
        op = services.start_operation(op, operator=operator)
        services.report_quantity(op, actor=operator, good=98, scrap=2)
        services.complete_operation(op, actor=operator)
    work_order.refresh_from_db()
    assert work_order.status == WorkOrderStatus.COMPLETED
    assert work_order.quantity_good == 98
    assert work_order.quantity_scrap == 6
    assert set(work_order.operations.values_list("status", flat=True)) == {OperationStatus.DONE}
