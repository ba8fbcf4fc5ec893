"""The dashboard's pure parts: token and cookie checks, the resource-use ring buffer and
its SVG, and the HTML pages (user data escaped, paging, notes). No process, no socket."""
from __future__ import annotations

import pytest

from raylite.dashboard import auth, pages
from raylite.dashboard.data import MAX_LIMIT, Page, clamp
from raylite.dashboard.plots import ResourceHistory, svg_plot

TOKEN = "a" * 32


def test_cookie_proves_the_token_without_holding_it():
    value = auth.session_cookie_value(TOKEN)
    assert TOKEN not in value
    assert auth.cookie_ok(value, TOKEN)
    assert not auth.cookie_ok(value, "b" * 32)
    assert not auth.cookie_ok("", TOKEN)
    assert not auth.cookie_ok(value[:-1] + "0" if value[-1] != "0" else value[:-1] + "1", TOKEN)


def test_token_and_bearer_checks():
    assert auth.token_matches(TOKEN, TOKEN)
    assert auth.token_matches(f" {TOKEN}\n", TOKEN)   # pasted with whitespace
    assert not auth.token_matches("", TOKEN)
    assert not auth.token_matches(TOKEN, "")
    assert not auth.token_matches(TOKEN[:-1], TOKEN)
    assert auth.bearer_token(f"Bearer {TOKEN}") == TOKEN
    assert auth.bearer_token(f"Basic {TOKEN}") == ""
    assert auth.authorized(cookie="", authorization=f"bearer {TOKEN}", token=TOKEN)
    assert auth.authorized(cookie=auth.session_cookie_value(TOKEN), authorization="", token=TOKEN)
    assert not auth.authorized(cookie="x", authorization="Bearer x", token=TOKEN)


@pytest.mark.parametrize("path,expected", [
    ("/actors?state=DEAD", "/actors?state=DEAD"), ("//evil.example/x", "/"),
    ("https://evil.example/", "/"), ("/\\evil", "/"), ("", "/"),
])
def test_login_only_redirects_within_the_site(path, expected):
    assert auth.safe_next(path) == expected


def test_clamp_bounds_every_page():
    assert clamp(10, 5) == (10, 5)
    assert clamp(10 ** 9, -3) == (MAX_LIMIT, 0)
    assert clamp("x", None) == (100, 0)
    assert clamp(0, 0) == (1, 0)


def test_history_keeps_the_last_samples_as_fractions():
    history = ResourceHistory(keep=3)
    for i in range(5):
        history.add("n1", float(i), {"CPU": i, "GPU": 9}, {"CPU": 4, "GPU": 1, "none": 0})
    series = history.series("n1")
    assert [s.at for s in series] == [2.0, 3.0, 4.0]
    assert series[-1].used == {"CPU": 1.0, "GPU": 1.0, "none": 0.0}   # clamped to [0, 1]
    assert series[0].used["CPU"] == 0.5
    history.add("n2", 0.0, {}, {"CPU": 1})
    history.forget_except(["n2"])
    assert history.series("n1") == [] and len(history.series("n2")) == 1
    assert history.as_json("n2") == [{"t": 0.0, "used": {"CPU": 0.0}}]


def test_svg_plot_draws_one_line_per_resource_and_escapes_names():
    history = ResourceHistory()
    for i in range(4):
        history.add("n", float(i), {"CPU": i, "<b>": 1}, {"CPU": 4, "<b>": 2})
    svg = svg_plot(history.series("n"))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count("<polyline") == 2
    assert "<b>" not in svg and "&lt;b&gt;" in svg
    assert "CPU 75%" in svg
    assert "no samples yet" in svg_plot([])


def _actor(**changes):
    row = {"actor_id": "ab" * 16, "class_name": "Counter", "state": "ALIVE", "name": "",
           "namespace": "", "node_id": "cd" * 16, "pid": 12, "job_id": "01", "num_restarts": 0,
           "max_restarts": 0, "detached": False, "death_cause": "", "time": 0.0}
    row.update(changes)
    return row


def test_pages_escape_user_data():
    page = Page([_actor(name="<script>alert(1)</script>", class_name="<img src=x>",
                        death_cause='"quoted"')], 1, extra={"by_state": {"ALIVE": 1}})
    text = pages.actors_page(page, "", 100, 0)
    assert "<script>alert" not in text and "&lt;script&gt;" in text
    assert "<img src=x>" not in text
    assert "<script" not in text.replace('<script src="/static/app.js" defer></script>', "")
    log = pages.log_view_page("n" * 32, "w.log", "</pre><script>x</script>")
    assert "<script>x" not in log


def test_actors_page_pages_and_filters():
    rows = [_actor(actor_id=f"{i:032x}") for i in range(3)]
    text = pages.actors_page(Page(rows, 250, extra={"by_state": {"ALIVE": 200, "DEAD": 50}}),
                             "ALIVE", 3, 3)
    assert "4-6 of 250" in text
    assert "offset=6" in text and "offset=0" in text
    assert "DEAD (50)" in text and "ALIVE (200)" in text


def test_tasks_page_says_why_it_is_empty_and_task_page_shows_the_traceback():
    text = pages.tasks_page(Page([], 0, "no state API here"), "", 100, 0)
    assert "no state API here" in text
    task = {"task_id": "t1", "name": "boom", "state": "FAILED",
            "error_message": "Traceback (most recent call last):\nValueError: <bad>"}
    detail = pages.task_page(task, "t1")
    assert "ValueError: &lt;bad&gt;" in detail and "class=traceback" in detail
    row = pages.tasks_page(Page([{**task, "start_time_ms": 1000, "end_time_ms": 3500}], 1), "",
                           100, 0)
    assert "2.500 s" in row and "ValueError: &lt;bad&gt;" in row and 'href="/tasks/t1"' in row


def test_timeline_page_draws_a_lane_per_worker():
    events = [{"ph": "X", "name": "f", "pid": "node1", "tid": "w1", "ts": 0, "dur": 1000},
              {"ph": "X", "name": "g", "pid": "node1", "tid": "w2", "ts": 500, "dur": 1000},
              {"ph": "M", "name": "process_name"}]
    text = pages.timeline_page(events)
    assert text.count("<rect") == 2 and "/api/timeline?download=1" in text
    assert "no task executions" in pages.timeline_page([])


def test_nodes_page_shows_resources_store_and_plot():
    history = ResourceHistory()
    history.add("n" * 32, 1.0, {"CPU": 1}, {"CPU": 2})
    history.add("n" * 32, 181.0, {"CPU": 1}, {"CPU": 2})
    row = {"node_id": "n" * 32, "alive": True, "address": "127.0.0.1:1", "host": "h",
           "is_head": True, "pid": 7, "resources": {"CPU": {"total": 2.0, "used": 1.0}},
           "death_reason": "", "store_capacity": 1 << 30, "store_used": 1 << 20,
           "metrics_export_port": 9100, "last_heartbeat": 0.0, "num_workers": 3}
    text = pages.nodes_page(Page([row], 1), history)
    assert "1/2 CPU" in text and "1.0 MiB / 1.0 GiB" in text and "metrics :9100" in text
    assert "<svg" in text and "head" in text and "3 worker process(es)" in text
    assert "use over the last 3 min" in text


def test_nodes_page_shows_work_waiting_for_resources():
    demand = {"infeasible": [{"resources": {"GPU": 8.0}, "count": 3, "names": ["train"]}],
              "pending": [{"resources": {"CPU": 1.0}, "count": 40, "names": ["<f>"]}]}
    text = pages.nodes_page(Page([], 0, extra={"demand": demand}), ResourceHistory())
    assert "Waiting for resources" in text
    assert "8 GPU" in text and "infeasible" in text and "train" in text
    assert "40" in text and "&lt;f&gt;" in text
    assert "Waiting for resources" not in pages.nodes_page(Page([], 0), ResourceHistory())
