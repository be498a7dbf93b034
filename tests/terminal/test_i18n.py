"""German on the terminal: the screens and the refusals the services give."""

from django.urls import reverse

from .conftest import act, op_at, op_url, text


def test_the_terminal_speaks_german_when_chosen(ana, op10):
    ana.post(reverse("set_language"), {"language": "de", "next": "/terminal/"})
    page = ana.get(op_url(op10))
    body = text(page)
    assert "Starten" in body and "Arbeitsanweisung" in body and "Abmelden" in body
    assert "Bereit" in body  # the status label


def test_refusals_from_the_services_are_german_too(ana, op10, one_machine_order):
    ana.post(reverse("set_language"), {"language": "de", "next": "/terminal/"})
    response = act(ana, op10, "report", {"token": "t-de-1", "status": "ready:released"}, good="5")
    assert f"{op10.label} ist bereit; Mengen können nur gemeldet werden, solange er läuft" in text(
        response
    )
    op20 = op_at(one_machine_order, 20)
    response = act(ana, op20, "start", {"token": "t-de", "status": "pending:released"})
    body = text(response)
    # op 20 is done at another work center: the terminal's own refusal, in German
    assert "Dieser Arbeitsgang wird an" in body and "nutzen Sie das Terminal dort" in body


def test_english_stays_the_default(ana, op10):
    assert "Start" in text(ana.get(op_url(op10)))
    assert "Starten" not in text(ana.get(op_url(op10)))
