"""Traveler barcodes: Code 128 that a real decoder (zbarimg) reads back."""

import shutil
import subprocess

import pytest
from django.urls import reverse

from mes.barcode import code128_modules, code128_svg
from tests.factories import make_work_order
from tests.support import require


def _decode(text: str, tmp_path) -> str:
    """Rasterise the bars to a greyscale image and let zbarimg read it."""
    require(shutil.which("zbarimg") is not None, "zbarimg (Debian package zbar-tools)")
    row = [255] * 60
    for index, width in enumerate(code128_modules(text)):
        row += [0 if index % 2 == 0 else 255] * (width * 3)
    row += [255] * 60
    image = tmp_path / "code.pgm"
    image.write_bytes(f"P5 {len(row)} 60 255\n".encode() + bytes(row) * 60)
    result = subprocess.run(
        ["zbarimg", "-q", "--raw", str(image)], capture_output=True, text=True, timeout=30
    )
    return result.stdout.strip()


@pytest.mark.parametrize("text", ["WO-1001/20", "WO-1001", "B-0050000/40", "ERP.x_9-1/10"])
def test_code128_reads_back(text, tmp_path):
    assert _decode(text, tmp_path) == text


def test_code128_refuses_what_it_cannot_encode():
    with pytest.raises(ValueError):
        code128_modules("Größe")
    with pytest.raises(ValueError):
        code128_modules("")


def test_svg_has_one_rect_per_bar_and_a_label():
    svg = code128_svg("WO-7/10")
    bars = len(code128_modules("WO-7/10")) // 2 + 1
    assert svg.count("<rect") == bars + 1  # plus the white background
    assert 'aria-label="WO-7/10"' in svg and ">WO-7/10</text>" in svg


def test_traveler_prints_a_barcode_per_operation(client, planner, supervisor):
    wo = make_work_order(actor=supervisor, steps=3)
    client.force_login(planner)
    body = client.get(reverse("work_order_traveler", args=[wo.number])).content.decode()
    for sequence in (10, 20, 30):
        assert f'aria-label="{wo.number}/{sequence}"' in body
    assert f'aria-label="{wo.number}"' in body
    assert "http://" not in body.replace('xmlns="http://www.w3.org/2000/svg"', "")
