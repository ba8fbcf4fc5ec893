"""The dashboard's web server (aiohttp): login, pages, /api/ JSON, static files, and a
sampler that keeps each node's resource use for the plots.

Every route but /login and /static/ needs the session cookie or a bearer token
(raylite.dashboard.auth); without it a page redirects to /login and an API call gets
401, and no cluster data is read. Data is read in a thread (the GCS client blocks), a
bounded page at a time (raylite.dashboard.data).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time

from aiohttp import web

from raylite.dashboard import auth, pages
from raylite.dashboard.assets import APP_CSS, APP_JS
from raylite.dashboard.data import TIMELINE_PAGE_EVENTS, DashboardData, clamp
from raylite.dashboard.plots import ResourceHistory

log = logging.getLogger("raylite.dashboard")

SAMPLE_EVERY_S = 2.0
OPEN_PATHS = ("/login", "/static/app.css", "/static/app.js", "/favicon.ico")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
TOKEN_KEY: web.AppKey = web.AppKey("token", str)
DATA_KEY: web.AppKey = web.AppKey("data", DashboardData)
HISTORY_KEY: web.AppKey = web.AppKey("history", ResourceHistory)


@web.middleware
async def guard(request: web.Request, handler):
    """Log in with ``?token=`` once, then the cookie; refuse everything else."""
    token = request.app[TOKEN_KEY]
    given = request.query.get("token")
    if given is not None:
        if not auth.token_matches(given, token):
            return _with_headers(web.Response(status=401, text="wrong token"))
        # Drop the token from the address (history, referers) and keep the cookie.
        query = {k: v for k, v in request.query.items() if k != "token"}
        target = request.rel_url.with_query(query) if query else request.rel_url.with_query(None)
        response = web.HTTPSeeOther(location=str(target))
        _set_cookie(response, token, request)
        raise response
    if request.path in OPEN_PATHS:
        return _with_headers(await handler(request))
    if not auth.authorized(cookie=request.cookies.get(auth.COOKIE_NAME, ""),
                           authorization=request.headers.get("Authorization", ""), token=token):
        if request.path.startswith("/api/"):
            return _with_headers(web.json_response({"error": "the cluster token is required"},
                                                   status=401))
        raise web.HTTPSeeOther(location="/login?" + _next_query(request))
    return _with_headers(await handler(request))


def _next_query(request: web.Request) -> str:
    from urllib.parse import urlencode
    return urlencode({"next": str(request.rel_url)})


def _with_headers(response):
    response.headers.update(SECURITY_HEADERS)
    return response


def _set_cookie(response, token: str, request: web.Request) -> None:
    response.set_cookie(auth.COOKIE_NAME, auth.session_cookie_value(token), httponly=True,
                        samesite="Strict", path="/", secure=request.secure)


def _html(text: str) -> web.Response:
    return web.Response(text=text, content_type="text/html")


async def _read(fn, *args):
    return await asyncio.to_thread(fn, *args)


# ---- login -------------------------------------------------------------------------------------
async def login_form(request: web.Request) -> web.Response:
    return _html(pages.login_page(next_path=auth.safe_next(request.query.get("next", "/"))))


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    next_path = auth.safe_next(str(form.get("next", "/")))
    if not auth.token_matches(str(form.get("token", "")), request.app[TOKEN_KEY]):
        return web.Response(text=pages.login_page("That is not the cluster token.", next_path),
                            content_type="text/html", status=401)
    response = web.HTTPSeeOther(location=next_path)
    _set_cookie(response, request.app[TOKEN_KEY], request)
    raise response


async def logout(request: web.Request) -> web.Response:
    response = web.HTTPSeeOther(location="/login")
    response.del_cookie(auth.COOKIE_NAME, path="/")
    raise response


async def static_file(request: web.Request) -> web.Response:
    if request.path.endswith(".css"):
        return web.Response(text=APP_CSS, content_type="text/css")
    if request.path.endswith(".js"):
        return web.Response(text=APP_JS, content_type="application/javascript")
    return web.Response(status=404)


# ---- pages -------------------------------------------------------------------------------------
def _paging(request: web.Request) -> tuple[int, int]:
    return clamp(request.query.get("limit", 100), request.query.get("offset", 0))


async def index(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther(location="/nodes")


async def nodes(request: web.Request) -> web.Response:
    data = request.app[DATA_KEY]
    page = await _read(data.nodes)
    page.extra["demand"] = await _read(data.demand, page.rows)
    return _html(pages.nodes_page(page, request.app[HISTORY_KEY]))


async def actors(request: web.Request) -> web.Response:
    limit, offset = _paging(request)
    state = request.query.get("state", "")
    page = await _read(request.app[DATA_KEY].actors, limit, offset, state)
    return _html(pages.actors_page(page, state, limit, offset))


async def tasks(request: web.Request) -> web.Response:
    limit, offset = _paging(request)
    state = request.query.get("state", "")
    page = await _read(request.app[DATA_KEY].tasks, limit, offset, state)
    return _html(pages.tasks_page(page, state, limit, offset))


async def task(request: web.Request) -> web.Response:
    task_id = request.match_info["task_id"]
    found = await _read(request.app[DATA_KEY].task, task_id)
    return _html(pages.task_page(found, task_id))


async def objects(request: web.Request) -> web.Response:
    limit, offset = _paging(request)
    page = await _read(request.app[DATA_KEY].objects, limit, offset)
    return _html(pages.objects_page(page, limit, offset))


async def logs(request: web.Request) -> web.Response:
    page = await _read(request.app[DATA_KEY].log_files)
    return _html(pages.logs_page(page))


async def log_view(request: web.Request) -> web.Response:
    node_id, name = request.query.get("node", ""), request.query.get("name", "")
    text = await _read(request.app[DATA_KEY].log_tail, node_id, name)
    return _html(pages.log_view_page(node_id, name, text))


async def timeline(request: web.Request) -> web.Response:
    events = await _read(request.app[DATA_KEY].timeline, TIMELINE_PAGE_EVENTS)
    return _html(pages.timeline_page(events))


# ---- JSON API ----------------------------------------------------------------------------------
def _page_json(page) -> web.Response:
    return web.json_response({"rows": page.rows, "total": page.total, "note": page.note,
                              **page.extra}, dumps=_dumps)


def _dumps(value) -> str:
    return json.dumps(value, default=str)


async def api_nodes(request: web.Request) -> web.Response:
    data = request.app[DATA_KEY]
    page = await _read(data.nodes)
    page.extra["demand"] = await _read(data.demand, page.rows)
    history = request.app[HISTORY_KEY]
    for row in page.rows:
        row["history"] = history.as_json(row["node_id"])
    return _page_json(page)


async def api_actors(request: web.Request) -> web.Response:
    limit, offset = _paging(request)
    return _page_json(await _read(request.app[DATA_KEY].actors, limit, offset,
                                  request.query.get("state", "")))


async def api_tasks(request: web.Request) -> web.Response:
    limit, offset = _paging(request)
    return _page_json(await _read(request.app[DATA_KEY].tasks, limit, offset,
                                  request.query.get("state", "")))


async def api_task(request: web.Request) -> web.Response:
    found = await _read(request.app[DATA_KEY].task, request.match_info["task_id"])
    if found is None:
        return web.json_response({"error": "no such task"}, status=404)
    return web.json_response(found, dumps=_dumps)


async def api_objects(request: web.Request) -> web.Response:
    limit, offset = _paging(request)
    return _page_json(await _read(request.app[DATA_KEY].objects, limit, offset))


async def api_logs(request: web.Request) -> web.Response:
    node_id, name = request.query.get("node", ""), request.query.get("name", "")
    data = request.app[DATA_KEY]
    if not name:
        return _page_json(await _read(data.log_files))
    text = await _read(data.log_tail, node_id, name)
    if text is None:
        return web.json_response({"error": "no such log file"}, status=404)
    return web.Response(text=text, content_type="text/plain")


async def api_timeline(request: web.Request) -> web.Response:
    events = await _read(request.app[DATA_KEY].timeline)
    response = web.json_response(events, dumps=_dumps)
    if request.query.get("download"):
        response.headers["Content-Disposition"] = 'attachment; filename="raylite-timeline.json"'
    return response


# ---- the sampler -------------------------------------------------------------------------------
async def sample_forever(app: web.Application) -> None:
    """Every SAMPLE_EVERY_S, record each alive node's resource use for the plots."""
    data, history = app[DATA_KEY], app[HISTORY_KEY]
    while True:
        try:
            page = await asyncio.to_thread(data.nodes)
            now = time.time()
            for row in page.rows:
                if not row["alive"]:
                    continue
                used = {k: v["used"] for k, v in row["resources"].items()}
                total = {k: v["total"] for k, v in row["resources"].items()}
                if row.get("store_used") is not None and row.get("store_capacity"):
                    used["object_store"] = row["store_used"]
                    total["object_store"] = row["store_capacity"]
                history.add(row["node_id"], now, used, total)
            history.forget_except(r["node_id"] for r in page.rows)
        except Exception as exc:   # the GCS may be restarting: keep the old samples
            log.warning("dashboard sampler: %s", exc)
        await asyncio.sleep(SAMPLE_EVERY_S)


async def _start_sampler(app: web.Application):
    task = asyncio.create_task(sample_forever(app))
    warming = asyncio.create_task(asyncio.to_thread(app[DATA_KEY].warm))
    yield
    task.cancel()
    warming.cancel()


def make_app(data: DashboardData, token: str) -> web.Application:
    """The dashboard application over ``data``, guarded by ``token``."""
    app = web.Application(middlewares=[guard], client_max_size=64 * 1024)
    app[TOKEN_KEY] = token
    app[DATA_KEY] = data
    app[HISTORY_KEY] = ResourceHistory()
    app.cleanup_ctx.append(_start_sampler)
    app.add_routes([
        web.get("/login", login_form), web.post("/login", login), web.post("/logout", logout),
        web.get("/static/app.css", static_file), web.get("/static/app.js", static_file),
        web.get("/", index), web.get("/nodes", nodes), web.get("/actors", actors),
        web.get("/tasks", tasks), web.get("/tasks/{task_id}", task),
        web.get("/objects", objects), web.get("/logs", logs), web.get("/logs/view", log_view),
        web.get("/timeline", timeline),
        web.get("/api/nodes", api_nodes), web.get("/api/actors", api_actors),
        web.get("/api/tasks", api_tasks), web.get("/api/tasks/{task_id}", api_task),
        web.get("/api/objects", api_objects), web.get("/api/logs", api_logs),
        web.get("/api/timeline", api_timeline),
    ])
    return app
