from django.apps import AppConfig


class TerminalConfig(AppConfig):
    name = "shopfloor.terminal"
    label = "terminal"
    verbose_name = "Operator terminals"
