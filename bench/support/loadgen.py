"""The load of ``bench/load.py``, with locust as a library: the terminals, the ERP and the
baseline probe as locust users, in a process of their own (``python -m
bench.support.loadgen SPEC``), because importing locust patches the standard library for
gevent, which the bench's own Django (and its database pool's threads) must not get.

It says "ready" once imported and starts when told "go" on stdin (so that its start-up
overlaps the plant's), warms the web workers up, runs the users for the spec's seconds and
writes to the spec's result file what every request took, by route, with the errors, what
the users did and the web workers' own times (/metrics) over the same window."""

from __future__ import annotations

import json
import random
import re
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import gevent
from locust import HttpUser, constant_pacing, events, task
from locust.env import Environment
from locust.exception import StopUser
from prometheus_client.parser import text_string_to_metric_families

from bench.load import (
    COMPLETE,
    FEED,
    FEED_NEXT,
    FEED_S,
    FIRST_REPORT,
    FLOOR,
    GENERATOR,
    OPERATION,
    OPERATION_LIVE,
    PANEL,
    PAUSE,
    PAUSE_ASK,
    POLL_S,
    PROBE_S,
    PUT,
    PUT_S,
    QUANTITY,
    REPORT,
    RESUME,
    SIGN_IN,
    SIGN_IN_PAGE,
    SPAWN_PER_S,
    START,
    WORK_CENTER,
)

# --- The terminal's pages, as a browser reads them --------------------------------------------


class Page(HTMLParser):
    """What a terminal acts on in a page: its forms (fields, radios, submit buttons), the
    queue's job links and the URL its live part polls."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self.jobs: list[tuple[str, str]] = []  # (href, label) of the queue's links
        self.polls: list[str] = []
        self._form: dict | None = None
        self._job: list | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if a.get("hx-get"):
            self.polls.append(a["hx-get"])
        if tag == "form":
            self._form = {"action": a.get("action", ""), "fields": {}, "radios": [], "buttons": []}
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None and a.get("name"):
            if a.get("type") == "radio":
                self._form["radios"].append((a["name"], a.get("value") or "", "checked" in a))
            else:
                self._form["fields"][a["name"]] = a.get("value") or ""
        elif tag == "button" and self._form is not None and a.get("name"):
            self._form["buttons"].append((a["name"], a.get("value") or ""))
        elif tag == "a" and a.get("class") == "job":
            self._job = [a.get("href", ""), ""]

    def handle_data(self, data: str) -> None:
        if self._job is not None:
            self._job[1] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "a" and self._job is not None:
            self.jobs.append((self._job[0], self._job[1].strip()))
            self._job = None

    def form(self, ending: str) -> dict | None:
        return next((f for f in self.forms if f["action"].endswith(ending)), None)


def refusal(html: str) -> str:
    """The message a refused action shows (the page's ``refusal`` paragraph), in words."""
    found = re.search(r'class="refusal"[^>]*>(.*?)</p>', html, re.S)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", found.group(1))).split()) if found else ""


def snippet(text: str, size: int = 160) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", text)).split())[:size]


SPEC: dict = {}  # what bench/load.py made: the host, terminals, tokens, sizes
HTMX = {"HX-Request": "true"}
STEPS = ["report", "pause", "resume", "report", "complete"]  # after the start


class Record:
    """Every request's time by route name, the failures with their first messages, and what
    the users did."""

    samples: dict[str, list[float]] = defaultdict(list)
    failures: Counter = Counter()
    messages: Counter = Counter()
    first: list[tuple[str, str]] = []
    notes: Counter = Counter()

    @classmethod
    def request(cls, name: str, response_time: float, exception, **_kw) -> None:
        if name != GENERATOR:
            cls.samples[name].append(response_time)
        if exception is not None:
            cls.failures[name] += 1
            message = str(exception)
            if (name, message) not in cls.messages and len(cls.first) < 10:
                cls.first.append((name, message))
            cls.messages[(name, message)] += 1

    @classmethod
    def user_error(cls, user_instance, exception, tb, **_kw) -> None:
        # A bug in a simulated user, not an answer of the server: counted, and shown.
        cls.request(GENERATOR, 0.0, f"{type(exception).__name__}: {exception}")


class Browser(HttpUser):
    abstract = True

    def call(self, method: str, url: str, name: str, *, expect: str = "", status=(200,), **kw):
        """One request under the route ``name``; a failure unless the status is one of
        ``status`` and the body shows ``expect``. Returns the response."""
        with self.client.request(
            method, url, name=name, catch_response=True, allow_redirects=False, **kw
        ) as response:
            code = response.status_code
            if not code:
                response.failure(f"no answer: {response.error}")
            elif code not in status:
                where = response.headers.get("HX-Redirect") or response.headers.get("Location")
                text = refusal(response.text) or snippet(response.text)
                response.failure(f"HTTP {code}{' to ' + where if where else ''}: {text}")
            elif expect and expect not in response.text:
                text = refusal(response.text) or snippet(response.text)
                response.failure(f"{expect!r} not shown: {text}")
            else:
                response.success()
        return response


class Terminal(Browser):
    """A terminal's browser: signs its operator in, polls what the page on screen polls,
    and acts every ``action_every`` seconds through the page's forms."""

    todo: list[dict] = []  # one terminal of the spec for each user

    def on_start(self) -> None:
        self.me = Terminal.todo.pop(0)
        self.client.cookies.set(SPEC["cookie"], self.me["token"])
        page = self.call("GET", "/terminal/", SIGN_IN_PAGE, expect='name="pin"')
        form = Page(page.text).form("/terminal/sign-in/")
        if form is None:
            raise StopUser()
        data = {**form["fields"], "badge": self.me["badge"], "pin": self.me["pin"]}
        signed = self.call("POST", "/terminal/sign-in/", SIGN_IN, data=data, status=(302,))
        if signed.status_code != 302:
            raise StopUser()
        Record.notes["terminals signed in"] += 1
        self.work_center()
        now = time.monotonic()
        self.next_poll = now + POLL_S
        self.next_action = now + random.uniform(0, SPEC["action_every"])

    def wait_time(self) -> float:
        return max(0.0, min(self.next_poll, self.next_action) - time.monotonic())

    @task
    def tick(self) -> None:
        now = time.monotonic()
        if now >= self.next_action:
            self.next_action = max(self.next_action + SPEC["action_every"], now)
            self.act()
            self.next_poll = time.monotonic() + POLL_S  # a new page polls afresh
        else:
            self.poll()
            self.next_poll = max(self.next_poll + POLL_S, time.monotonic())

    def work_center(self) -> None:
        page = self.call("GET", "/terminal/", WORK_CENTER, expect='id="wc-live"')
        self.queue, self.op, self.step = Page(page.text), None, 0

    def poll(self) -> None:
        """htmx's poll of the screen shown: the work center panel, or the operation's live
        part (which brings the URL of its next poll)."""
        if self.op is None:
            page = self.call("GET", "/terminal/panel/", PANEL, expect='class="tiles"', headers=HTMX)
            self.queue = Page(page.text)
            return
        live = self.call("GET", self.live, OPERATION_LIVE, expect='id="op-live"', headers=HTMX)
        polls = Page(live.text).polls if live.status_code == 200 else []
        self.live = unescape(polls[0]) if polls else self.live

    def post(self, form: dict, name: str, expect: str, **values) -> Page | None:
        """Submit a form of the operation's body as htmx does; the body that comes back,
        or None when it does not show ``expect``."""
        data = {**form["fields"], **values}
        for radio, value, checked in form["radios"]:
            if checked and radio not in data:
                data[radio] = value
        headers = {**HTMX, "X-CSRFToken": form["fields"].get("csrfmiddlewaretoken", "")}
        response = self.call(
            "POST", form["action"], name, expect=expect, data=data, headers=headers
        )
        if response.status_code != 200 or expect not in response.text:
            return None
        self.body = Page(response.text)
        return self.body

    def act(self) -> None:
        """The next action on the operation at hand, or the start of the next one."""
        if self.op is None:
            return self.begin()
        step = STEPS[self.step]
        form = self.body.form(f"/{step}/")
        if form is None:
            Record.notes["actions not offered"] += 1
            return self.work_center()
        if step == "report":
            good = FIRST_REPORT if self.step == 0 else QUANTITY - FIRST_REPORT
            done = self.post(form, REPORT, "Reported", good=str(good))
        elif step == "pause":  # asks why on a screen of its own; one tap per reason
            asked = self.post(form, PAUSE_ASK, 'name="reason"')
            form = asked.form("/pause/") if asked else None
            done = form and self.post(form, PAUSE, "Paused", reason=form["buttons"][0][1])
        elif step == "resume":
            done = self.post(form, RESUME, "Resumed")
        else:
            done = self.post(form, COMPLETE, "Completed")
            if done:
                Record.notes["operations completed"] += 1
                return self.work_center()
        if not done:  # refused (counted): back to the work center, as an operator would
            return self.work_center()
        self.step += 1
        self.live = unescape(self.body.polls[0]) if self.body.polls else self.live

    def begin(self) -> None:
        """Open the first job of its own in the queue and start it on its machine."""
        mine = [href for href, label in self.queue.jobs if label.startswith(self.me["prefix"])]
        if not mine:
            Record.notes["actions with no job of its own left"] += 1
            return
        page = self.call("GET", mine[0], OPERATION, expect="Start")
        form = Page(page.text).form("/start/") if page.status_code == 200 else None
        if form is None:
            return
        form["radios"] = [(n, v, v == self.me["machine"]) for n, v, _c in form["radios"]]
        if self.post(form, START, "Started"):
            Record.notes["operations started"] += 1
            self.op, self.step = mine[0], 0
            self.live = unescape(self.body.polls[0])


class Erp(Browser):
    """The ERP: the changes feed every second (to its end, then from the newest change
    seen), a new released order every PUT_S seconds."""

    fixed_count = 1

    def on_start(self) -> None:
        self.client.headers.update(
            {"Authorization": f"Bearer {SPEC['erp_token']}", "Accept": "application/json"}
        )
        self.since, self.made = SPEC["since"], 0
        now = time.monotonic()
        self.next_feed, self.next_put = now, now + PUT_S / 2

    def wait_time(self) -> float:
        return max(0.0, min(self.next_feed, self.next_put) - time.monotonic())

    @task
    def tick(self) -> None:
        now = time.monotonic()
        if now >= self.next_put:
            self.next_put = max(self.next_put + PUT_S, now)
            self.put()
        else:
            self.next_feed = max(self.next_feed + FEED_S, now)
            self.feed()

    def feed(self) -> None:
        url, name = "/api/v1/work-orders/", FEED
        params: dict | None = {"updated_since": self.since, "page_size": 100}
        newest = None
        while url:
            response = self.call("GET", url, name, expect='"results"', params=params)
            if response.status_code != 200:
                return
            page = response.json()
            Record.notes["changes read by the ERP"] += len(page["results"])
            for order in page["results"]:
                at = datetime.fromisoformat(order["updated_at"])
                newest = at if newest is None or at > newest else newest
            url, name, params = page["next"], FEED_NEXT, None
        if newest is not None:
            self.since = newest.isoformat()

    def put(self) -> None:
        number = f"{SPEC['erp_prefix']}{self.made:04d}"
        body = {
            "product": SPEC["products"][self.made % len(SPEC["products"])],
            "quantity": 30,
            "due_date": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
            "release": True,
        }
        self.made += 1
        response = self.call("PUT", f"/api/v1/work-orders/{number}/", PUT, json=body, status=(201,))
        if response.status_code == 201:
            Record.notes["orders created by the ERP"] += 1


class Probe(Browser):
    """The baseline: a constant view, under the same load."""

    fixed_count = 1
    wait_time = constant_pacing(PROBE_S)

    @task
    def healthz(self) -> None:
        self.call("GET", "/healthz", FLOOR)


def warm_up(rounds: int = 3) -> None:
    """What a server that has been up a while has done: each web worker has rendered the
    terminal's pages and answered the API (templates compiled, connections open). A
    terminal of its own signs in and looks around; nothing of it is measured."""
    import requests  # after locust: it patches the standard library (ssl) at import

    host, warm = SPEC["host"], SPEC["warm_up"]

    def browse() -> None:
        with requests.Session() as client:
            client.cookies.set(SPEC["cookie"], warm["token"])
            for _ in range(rounds):
                form = Page(client.get(f"{host}/terminal/").text).form("/terminal/sign-in/")
                if form is not None:
                    client.post(
                        f"{host}/terminal/sign-in/", data={**form["fields"], **warm["badge_pin"]}
                    )
                queue = Page(client.get(f"{host}/terminal/").text)
                client.get(f"{host}/terminal/panel/", headers=HTMX)
                if queue.jobs:
                    body = Page(client.get(host + queue.jobs[0][0]).text)
                    if body.polls:
                        client.get(host + unescape(body.polls[0]), headers=HTMX)
                client.get(
                    f"{host}/api/v1/work-orders/",
                    params={"updated_since": SPEC["since"]},
                    headers={"Authorization": f"Bearer {SPEC['erp_token']}"},
                )
                client.get(f"{host}/healthz")

    gevent.joinall([gevent.spawn(browse) for _ in range(SPEC["web_workers"])], raise_error=True)


def server_times() -> dict[str, tuple[float, int]]:
    """Seconds spent answering, and answers, by "<method> <URL name>", as the web workers
    measured them (``mes_http_request_duration_seconds`` at /metrics, every status)."""
    import requests

    totals: dict[str, list] = defaultdict(lambda: [0.0, 0])
    text = requests.get(f"{SPEC['host']}/metrics", timeout=30).text
    for family in text_string_to_metric_families(text):
        if family.name != "mes_http_request_duration_seconds":
            continue
        for sample in family.samples:
            key = f"{sample.labels.get('method')} {sample.labels.get('route')}"
            if sample.name.endswith("_sum"):
                totals[key][0] += sample.value
            elif sample.name.endswith("_count"):
                totals[key][1] += int(sample.value)
    return {key: (total, count) for key, (total, count) in totals.items()}


def run() -> dict:
    """Warm up, then every user for the spec's seconds; what was recorded."""
    warm_up()
    Terminal.todo = list(SPEC["terminals"])
    Terminal.fixed_count = len(SPEC["terminals"])
    events.request.add_listener(Record.request)
    events.user_error.add_listener(Record.user_error)
    env = Environment(user_classes=[Terminal, Erp, Probe], events=events, host=SPEC["host"])
    runner = env.create_local_runner()
    before = server_times()
    cpu, started = time.process_time(), time.monotonic()
    runner.start(len(SPEC["terminals"]) + 2, spawn_rate=SPAWN_PER_S)
    gevent.spawn_later(SPEC["seconds"], runner.quit)
    runner.greenlet.join()
    seconds, cpu = time.monotonic() - started, time.process_time() - cpu
    after = server_times()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "samples": Record.samples,
        "failures": Record.failures,
        "errors": [[n, m, Record.messages[(n, m)]] for n, m in Record.first],
        "error_kinds": len(Record.messages),
        "notes": Record.notes,
        "server": {
            key: [total - before.get(key, (0.0, 0))[0], count - before.get(key, (0.0, 0))[1]]
            for key, (total, count) in after.items()
        },
    }


def main(spec_path: str) -> None:
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    SPEC.update(json.loads(Path(spec_path).read_text()))
    SPEC["since"] = datetime.now(UTC).isoformat()  # the ERP follows the changes from now on
    Path(SPEC["result"]).write_text(json.dumps(run()))


if __name__ == "__main__":
    main(sys.argv[1])
