"""Code 128 (subset B) barcodes as SVG, for printed travelers. Pure Python, no ORM."""

from __future__ import annotations

from html import escape

# Bar/space widths of the 107 Code 128 symbols (values 0-106; 106 is STOP, 7 elements).
PATTERNS = [
    "212222",
    "222122",
    "222221",
    "121223",
    "121322",
    "131222",
    "122213",
    "122312",
    "132212",
    "221213",
    "221312",
    "231212",
    "112232",
    "122132",
    "122231",
    "113222",
    "123122",
    "123221",
    "223211",
    "221132",
    "221231",
    "213212",
    "223112",
    "312131",
    "311222",
    "321122",
    "321221",
    "312212",
    "322112",
    "322211",
    "212123",
    "212321",
    "232121",
    "111323",
    "131123",
    "131321",
    "112313",
    "132113",
    "132311",
    "211313",
    "231113",
    "231311",
    "112133",
    "112331",
    "132131",
    "113123",
    "113321",
    "133121",
    "313121",
    "211331",
    "231131",
    "213113",
    "213311",
    "213131",
    "311123",
    "311321",
    "331121",
    "312113",
    "312311",
    "332111",
    "314111",
    "221411",
    "431111",
    "111224",
    "111422",
    "121124",
    "121421",
    "141122",
    "141221",
    "112214",
    "112412",
    "122114",
    "122411",
    "142112",
    "142211",
    "241211",
    "221114",
    "413111",
    "241112",
    "134111",
    "111242",
    "121142",
    "121241",
    "114212",
    "124112",
    "124211",
    "411212",
    "421112",
    "421211",
    "212141",
    "214121",
    "412121",
    "111143",
    "111341",
    "131141",
    "114113",
    "114311",
    "411113",
    "411311",
    "113141",
    "114131",
    "311141",
    "411131",
    "211412",
    "211214",
    "211232",
    "2331112",
]
START_B, STOP = 104, 106


def code128_modules(text: str) -> list[int]:
    """Alternating bar/space widths (in modules), starting with a bar."""
    if not text or any(not 32 <= ord(ch) <= 126 for ch in text):
        raise ValueError("Code 128 B encodes printable ASCII only.")
    values = [START_B] + [ord(ch) - 32 for ch in text]
    checksum = (values[0] + sum(i * v for i, v in enumerate(values[1:], start=1))) % 103
    widths: list[int] = []
    for value in [*values, checksum, STOP]:
        widths.extend(int(w) for w in PATTERNS[value])
    return widths


def code128_svg(text: str, *, module: float = 2.0, height: float = 60.0) -> str:
    """An SVG with a quiet zone of ten modules on each side and the text below."""
    widths = code128_modules(text)
    quiet = 10 * module
    x = quiet
    bars = []
    for index, width in enumerate(widths):
        w = width * module
        if index % 2 == 0:
            bars.append(f'<rect x="{x:g}" y="0" width="{w:g}" height="{height:g}"/>')
        x += w
    total = x + quiet
    label = escape(text)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total:g}" height="{height + 18:g}" '
        f'viewBox="0 0 {total:g} {height + 18:g}" role="img" aria-label="{label}">'
        f'<rect width="100%" height="100%" fill="#fff"/><g fill="#000">{"".join(bars)}</g>'
        f'<text x="{total / 2:g}" y="{height + 14:g}" font-family="monospace" font-size="14" '
        f'text-anchor="middle">{label}</text></svg>'
    )
