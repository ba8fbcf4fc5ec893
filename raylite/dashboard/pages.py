"""HTML of every dashboard page, from the data of raylite.dashboard.data.

Pure string building: every value from the cluster goes through ``esc`` (actor names,
log lines and tracebacks are user data). Pages carry no inline script or style (the
Content-Security-Policy forbids them); /static/app.js refreshes the <main> of a page
marked live, /static/app.css styles it.
"""
from __future__ import annotations

import html
import time
from urllib.parse import urlencode

from raylite.dashboard.plots import svg_plot

NAV = (("/nodes", "Nodes"), ("/actors", "Actors"), ("/tasks", "Tasks"),
       ("/objects", "Objects"), ("/logs", "Logs"), ("/timeline", "Timeline"))


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def layout(title: str, active: str, body: str, *, live: bool = True) -> str:
    """A whole page: header, navigation and ``body`` inside <main>."""
    links = "".join(
        f'<a href="{href}"{" class=active" if href == active else ""}>{name}</a>'
        for href, name in NAV)
    return ("<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<title>{esc(title)} - raylite</title>"
            '<meta name=viewport content="width=device-width, initial-scale=1">'
            '<link rel=stylesheet href="/static/app.css">'
            '<script src="/static/app.js" defer></script></head>'
            f'<body{" data-live=1" if live else ""}><header><span class=brand>raylite</span>'
            f"<nav>{links}</nav>"
            '<form method=post action="/logout"><button>Log out</button></form></header>'
            f"<main><h1>{esc(title)}</h1>{body}</main></body></html>")


def login_page(error: str = "", next_path: str = "/") -> str:
    msg = f"<p class=error>{esc(error)}</p>" if error else ""
    return ("<!doctype html><html lang=en><head><meta charset=utf-8>"
            "<title>Log in - raylite</title>"
            '<link rel=stylesheet href="/static/app.css"></head><body>'
            "<main class=login><h1>raylite dashboard</h1>"
            "<p>Enter the cluster token (the file <code>token</code> in the head's session "
            "directory, or <code>$RAYLITE_TOKEN</code>).</p>"
            f'{msg}<form method=post action="/login"><input type=hidden name=next '
            f'value="{esc(next_path)}"><input type=password name=token id=token '
            'autocomplete=current-password autofocus placeholder="cluster token">'
            "<button type=submit id=login>Log in</button></form></main></body></html>")


# ---- shared pieces -------------------------------------------------------------------------
def fmt_bytes(n) -> str:
    if n is None:
        return "?"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def fmt_amount(name: str, value: float) -> str:
    if name in ("memory", "object_store_memory"):
        return fmt_bytes(value)
    return f"{value:g}"


def fmt_time(ts) -> str:
    if not ts:
        return ""
    return time.strftime("%H:%M:%S", time.localtime(float(ts)))


def bar(used: float, total: float) -> str:
    frac = 0.0 if not total else max(0.0, min(1.0, used / total))
    return (f'<span class=bar title="{frac:.0%}"><span class="fill w{int(frac * 20) * 5}">'
            "</span></span>")


def pager(base: str, params: dict, total: int, limit: int, offset: int) -> str:
    if total <= limit and offset == 0:
        return ""
    parts = [f"<p class=pager>{offset + 1 if total else 0}-{min(total, offset + limit)} of {total} "]
    if offset > 0:
        query = urlencode({**params, "offset": max(0, offset - limit), "limit": limit})
        parts.append(f'<a href="{base}?{esc(query)}">&larr; newer</a> ')
    if offset + limit < total:
        query = urlencode({**params, "offset": offset + limit, "limit": limit})
        parts.append(f'<a href="{base}?{esc(query)}" class=next>older &rarr;</a>')
    parts.append("</p>")
    return "".join(parts)


def table(headers: list[str], rows: list[list[str]], empty: str, css: str = "") -> str:
    """``rows`` are lists of HTML cells (already escaped)."""
    if not rows:
        return f"<p class=empty>{esc(empty)}</p>"
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def state_badge(state: str) -> str:
    return f'<span class="state s-{esc(str(state).lower())}">{esc(state)}</span>'


def note(text: str) -> str:
    return f"<p class=note>{esc(text)}</p>" if text else ""


# ---- pages ---------------------------------------------------------------------------------
def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def nodes_page(page, history) -> str:
    cards = []
    totals: dict = {}
    for n in page.rows:
        res_rows = []
        for name, amounts in n["resources"].items():
            if n["alive"]:
                t = totals.setdefault(name, [0.0, 0.0])
                t[0] += amounts["used"]
                t[1] += amounts["total"]
            res_rows.append([esc(name), bar(amounts["used"], amounts["total"]),
                             f'{esc(fmt_amount(name, amounts["used"]))} / '
                             f'{esc(fmt_amount(name, amounts["total"]))}'])
        if n.get("store_capacity"):
            used = n.get("store_used")
            res_rows.append(["object store", bar(used or 0, n["store_capacity"]),
                             f'{esc(fmt_bytes(used))} / {esc(fmt_bytes(n["store_capacity"]))}'])
        status = state_badge("ALIVE" if n["alive"] else "DEAD")
        head = " <span class=tag>head</span>" if n["is_head"] else ""
        why = f" <span class=muted>{esc(n['death_reason'])}</span>" if n["death_reason"] else ""
        metrics = (f"metrics :{n['metrics_export_port']}" if n.get("metrics_export_port")
                   else "no metrics endpoint")
        workers = f" &middot; {n['num_workers']} worker process(es)" if "num_workers" in n else ""
        series = history.series(n["node_id"])
        span = series[-1].at - series[0].at if len(series) > 1 else 0.0
        window = f"use over the last {_duration(span)}" if span else "use over time"
        cards.append(
            f'<section class=node id="node-{esc(n["node_id"])}">'
            f'<h2><code>{esc(n["node_id"][:12])}</code> {status}{head}{why}</h2>'
            f'<p class=muted>{esc(n["address"])} (pid {esc(n["pid"])}){workers} &middot; '
            f"{esc(metrics)}</p>"
            f'<div class=cols><div>{table(["resource", "use", "used / total"], res_rows, "none")}'
            f"</div><div class=plotbox><p class=muted>{window} (fraction used)</p>"
            f"{svg_plot(series)}</div></div></section>")
    summary = ", ".join(f"{fmt_amount(k, v[0])}/{fmt_amount(k, v[1])} {k}"
                        for k, v in sorted(totals.items()))
    alive = sum(1 for n in page.rows if n["alive"])
    head = (f"<p class=summary>{alive} alive node(s) of {len(page.rows)} &middot; "
            f"used/total: {esc(summary) or 'none'}</p>")
    return layout("Nodes", "/nodes", head + demand_section(page.extra.get("demand") or {})
                  + "".join(cards))


def demand_section(demand: dict) -> str:
    """Work waiting for resources; what no node can ever hold is shown loudly."""
    rows = []
    for kind in ("infeasible", "pending"):
        for group in demand.get(kind, ()):
            asked = ", ".join(f"{fmt_amount(k, v)} {k}" for k, v in sorted(group["resources"].items()))
            why = ("<span class=err>infeasible: no alive node has this much</span>"
                   if kind == "infeasible" else "waiting for resources to free up")
            rows.append([esc(asked), esc(group["count"]), esc(", ".join(group["names"])), why])
    if not rows:
        return ""
    return ("<h2>Waiting for resources</h2>"
            + table(["asks for", "tasks/actors", "e.g.", "why"], rows, "", "demand"))


def actors_page(page, state: str, limit: int, offset: int) -> str:
    counts = page.extra.get("by_state", {})
    filters = ['<p class=filters>state: <a href="/actors"'
               f'{" class=active" if not state else ""}>all ({sum(counts.values())})</a>']
    for s, n in sorted(counts.items()):
        css = " class=active" if s == state else ""
        filters.append(f' <a href="/actors?state={esc(s)}"{css}>{esc(s)} ({n})</a>')
    filters.append("</p>")
    rows = [[f'<code title="{esc(a["actor_id"])}">{esc(a["actor_id"][:12])}</code>',
             esc(a["class_name"]), state_badge(a["state"]), esc(a["name"] or ""),
             f'<code>{esc((a["node_id"] or "")[:8])}</code>', esc(a["pid"] or ""),
             esc(a["num_restarts"]), esc(a["death_cause"])] for a in page.rows]
    body = "".join(filters) + table(
        ["actor", "class", "state", "name", "node", "pid", "restarts", "death cause"], rows,
        "no actors", "actors") + pager("/actors", {"state": state} if state else {}, page.total,
                                        limit, offset)
    return layout("Actors", "/actors", body)


def _task_duration(t: dict) -> str:
    start, end = t.get("start_time_ms"), t.get("end_time_ms")
    if start and end:
        return f"{(end - start) / 1000:.3f} s"
    if start and t.get("state") == "RUNNING":
        return "running"
    return ""


def _first_line(text) -> str:
    text = str(text or "").strip()
    return text.splitlines()[-1][:200] if text else ""


def tasks_page(page, state: str, limit: int, offset: int) -> str:
    counts = page.extra.get("by_state") or {}
    everything = f" ({sum(counts.values())})" if counts else ""
    filters = [f'<p class=filters>state: <a href="/tasks"{" class=active" if not state else ""}>'
               f"all{everything}</a>"]
    known = ("PENDING_ARGS_AVAIL", "PENDING_NODE_ASSIGNMENT", "SUBMITTED_TO_WORKER", "RUNNING",
             "FINISHED", "FAILED")
    for s in known + tuple(sorted(k for k in counts if k and k not in known)):
        css = " class=active" if s == state else ""
        n = f" ({counts[s]})" if s in counts else ""
        filters.append(f' <a href="/tasks?state={esc(s)}"{css}>{esc(s)}{n}</a>')
    filters.append("</p>")
    rows = []
    for t in page.rows:
        tid = str(t.get("task_id", ""))
        name = t.get("name") or t.get("func_or_class_name") or ""
        error = _first_line(t.get("error_message") or t.get("error_type"))
        rows.append([f'<a href="/tasks/{esc(tid)}"><code>{esc(tid[:16])}</code></a>', esc(name),
                     state_badge(t.get("state", "")), f'<code>{esc(str(t.get("node_id") or "")[:8])}</code>',
                     esc(t.get("worker_pid") or ""), esc(_task_duration(t)),
                     f"<span class=err>{esc(error)}</span>"])
    body = (note(page.note) + "".join(filters)
            + table(["task", "name", "state", "node", "pid", "duration", "error"], rows,
                    "no tasks recorded" if not page.note else "", "tasks")
            + pager("/tasks", {"state": state} if state else {}, page.total, limit, offset))
    return layout("Tasks", "/tasks", body)


def task_page(task: dict | None, task_id: str) -> str:
    if task is None:
        return layout(f"Task {task_id[:16]}", "/tasks",
                      "<p class=empty>No such task (or no task events recorded).</p>", live=False)
    rows = [[esc(k), f"<code>{esc(v)}</code>"] for k, v in sorted(task.items())
            if k not in ("error_message", "traceback") and not isinstance(v, (list, dict))]
    error = task.get("traceback") or task.get("error_message") or ""
    err_html = f"<h2>Error</h2><pre class=traceback>{esc(error)}</pre>" if error else ""
    return layout(f"Task {task_id[:16]}", "/tasks", err_html + table(["field", "value"], rows, ""),
                  live=False)


def objects_page(page, limit: int, offset: int) -> str:
    rows = []
    for o in page.rows:
        oid = str(o.get("object_id", ""))
        rows.append([f'<code title="{esc(oid)}">{esc(oid[:16])}</code>',
                     esc(fmt_bytes(o.get("object_size"))) if o.get("object_size") is not None else "",
                     esc(o.get("reference_type", "")), esc(o.get("task_status", "")),
                     f'<code>{esc(str(o.get("node_id") or o.get("ip") or "")[:8])}</code>',
                     esc(o.get("pid", "")), esc(o.get("call_site", ""))])
    body = (note(page.note)
            + table(["object", "size", "reference", "status", "node", "pid", "call site"], rows,
                    "no objects" if not page.note else "", "objects")
            + pager("/objects", {}, page.total, limit, offset))
    return layout("Objects", "/objects", body)


def logs_page(page) -> str:
    rows = []
    for f in page.rows[:500]:
        query = urlencode({"node": f["node_id"], "name": f["name"]})
        rows.append([f'<code>{esc(f["node_id"][:8])}</code>',
                     f'<a href="/logs/view?{esc(query)}">{esc(f["name"])}</a>',
                     esc(fmt_bytes(f["size"])), esc(fmt_time(f["mtime"]))])
    return layout("Logs", "/logs", note(page.note) + table(["node", "file", "size", "modified"],
                                                           rows, "no log files", "logs"))


def log_view_page(node_id: str, name: str, text: str | None) -> str:
    if text is None:
        body = "<p class=empty>No such log file.</p>"
    else:
        body = (f'<p class=muted>node <code>{esc(node_id[:8])}</code> &middot; last '
                f'{len(text)} characters &middot; <a href="/logs">all logs</a></p>'
                f'<pre class=log>{esc(text)}</pre>')
    return layout(f"Log {name}", "/logs", body)


def timeline_page(events: list, max_events: int = 2000) -> str:
    """The trace as one lane per (node, worker), bars for task executions."""
    names: dict = {}
    for e in events:   # metadata events name processes (nodes) and threads (workers)
        if e.get("ph") == "M" and e.get("name") in ("process_name", "thread_name"):
            key = (e.get("pid"),) if e["name"] == "process_name" else (e.get("pid"), e.get("tid"))
            names[key] = str((e.get("args") or {}).get("name", ""))
    events = [e for e in events if e.get("ph") == "X" and "dur" in e][-max_events:]
    link = ('<p><a href="/api/timeline?download=1" id=download>Download the Chrome trace '
            "(JSON)</a> &mdash; open it in Perfetto or chrome://tracing.</p>")
    if not events:
        return layout("Timeline", "/timeline", link + "<p class=empty>no task executions "
                      "recorded</p>")
    lanes: dict = {}
    for e in events:
        lanes.setdefault((e.get("pid", ""), e.get("tid", "")), []).append(e)
    t0 = min(e["ts"] for e in events)
    t1 = max(e["ts"] + e["dur"] for e in events)
    span = (t1 - t0) or 1.0
    width, lane_h, label_w = 1100, 18, 340
    height = lane_h * len(lanes) + 20
    parts = [f'<svg class=timeline width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}">']
    for i, ((pid, tid), lane) in enumerate(sorted(lanes.items(), key=lambda kv: str(kv[0]))):
        y = i * lane_h
        label = f"{names.get((pid,), pid)} / {names.get((pid, tid), tid)}"
        parts.append(f'<text x="2" y="{y + 13}" font-size="10">{esc(label[:52])}</text>')
        for e in lane:
            x = label_w + (e["ts"] - t0) / span * (width - label_w - 4)
            w = max(1.0, e["dur"] / span * (width - label_w - 4))
            color = "#dc2626" if e.get("cname") == "terrible" else "#2563eb"
            parts.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{lane_h - 5}" '
                         f'fill="{color}"><title>{esc(e.get("name", ""))} '
                         f'{e["dur"] / 1000:.2f} ms</title></rect>')
    parts.append(f'<text x="{label_w}" y="{height - 4}" font-size="11">{span / 1e6:.3f} s '
                 "shown</text></svg>")
    return layout("Timeline", "/timeline", link + "".join(parts))
