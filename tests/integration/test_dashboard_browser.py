"""The dashboard in a real headless browser (Debian's chromium through selenium): log
in with the cluster token, visit every page of a cluster that ran tasks (one failing)
and actors, check what each shows, and save screenshots into the test's tmp dir.

Skipped, saying why, when selenium, chromium or chromedriver is not installed
(.ci/run installs them with apt-get where it can)."""
from __future__ import annotations

import os
import shutil
import time

import pytest

import raylite as ray
from raylite.core import global_state

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed "
                                "(pip install selenium; it is in the test extra)")

RAY_INIT_KWARGS = {"num_cpus": 2, "include_dashboard": True, "dashboard_port": 0}


def _browser_paths() -> tuple[str, str]:
    browser = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"),
                                shutil.which("google-chrome")) if p), None)
    driver = shutil.which("chromedriver") or (
        "/usr/lib/chromium/chromedriver" if os.path.exists("/usr/lib/chromium/chromedriver") else None)
    if browser is None or driver is None:
        pytest.skip("no headless browser here: install Debian's chromium and chromium-driver "
                    "(apt-get install chromium chromium-driver) to run the dashboard's browser test")
    return browser, driver


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    binary, driver = _browser_paths()
    options = Options()
    options.binary_location = binary
    profile = tmp_path_factory.mktemp("chromium-profile")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", f"--user-data-dir={profile}",
                "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    try:
        session = webdriver.Chrome(options=options, service=Service(driver))
    except Exception as err:   # a browser that cannot start here (no display libs, ...)
        pytest.skip(f"chromium is installed but did not start: {str(err).splitlines()[0]}")
    session.set_page_load_timeout(60)
    yield session
    session.quit()


@pytest.fixture(scope="module")
def workload(ray_start):
    @ray.remote
    def square(x):
        return x * x

    @ray.remote(max_retries=0)
    def explode():
        raise ValueError("dashboard-test-boom")

    @ray.remote
    class Greeter:
        def hello(self):
            print("greeter says hello")
            return "hi"

    assert ray.get([square.remote(i) for i in range(50)])[-1] == 49 * 49
    import numpy as np
    held = ray.put(np.zeros(1 << 18))   # a 2 MiB object for the objects page
    def make_greeter(name):
        greeter = Greeter.options(name=name).remote()
        assert ray.get(greeter.hello.remote()) == "hi"
        return greeter

    greeters = [Greeter.options(name=f"greeter-{i}").remote() for i in range(2)]
    assert ray.get([g.hello.remote() for g in greeters]) == ["hi", "hi"]
    with pytest.raises(ValueError):
        ray.get(explode.remote())
    yield {"url": "http://" + ray_start.dashboard_url, "token": global_state.connection().worker.token,
           "node_id": global_state.connection().worker.node_id, "greeters": greeters,
           "held": held, "make_greeter": make_greeter}


def _wait_text(browser, text: str, timeout: float = 20.0) -> str:
    """The page's text once it shows ``text`` (or at the deadline). While a click or a
    redirect loads the next page there may be no <body> yet, or a stale one: retried."""
    from selenium.common.exceptions import WebDriverException
    deadline = time.monotonic() + timeout
    body = ""
    while True:
        try:
            body = browser.find_element("tag name", "body").text
        except WebDriverException:
            body = ""
        if text in body or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def _click(browser, by: str, value: str, timeout: float = 20.0) -> None:
    """Click an element; live pages re-render themselves every few seconds, so an
    element found a moment ago may be stale: found again and retried until the
    deadline."""
    from selenium.common.exceptions import WebDriverException
    deadline = time.monotonic() + timeout
    while True:
        try:
            browser.find_element(by, value).click()
            return
        except WebDriverException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_dashboard_in_a_browser(browser, workload, tmp_path):
    url = workload["url"]
    shots = tmp_path / "screenshots"
    shots.mkdir()

    # Without the token: the login page, and no cluster data in it.
    browser.get(url + "/nodes")
    assert "/login" in browser.current_url
    assert workload["node_id"][:12] not in browser.page_source
    browser.save_screenshot(str(shots / "login.png"))
    browser.find_element("id", "token").send_keys("not-the-token")
    _click(browser, "id", "login")
    assert "not the cluster token" in _wait_text(browser, "not the cluster token")

    browser.find_element("id", "token").send_keys(workload["token"])
    _click(browser, "id", "login")
    body = _wait_text(browser, "alive node")
    assert browser.current_url.endswith("/nodes")
    assert workload["node_id"][:12] in body and "CPU" in body and "object store" in body
    # The plot fills in as the dashboard samples the node (every 2 s).
    deadline = time.monotonic() + 30
    while not browser.find_elements("css selector", "svg.plot polyline"):
        assert time.monotonic() < deadline, "no resource-use plot was drawn"
        time.sleep(0.5)
        browser.refresh()
    browser.save_screenshot(str(shots / "nodes.png"))
    # The session cookie is HttpOnly: scripts on the page cannot read it.
    assert "raylite_dashboard" not in browser.execute_script("return document.cookie")
    cookie = browser.get_cookie("raylite_dashboard")
    assert cookie["httpOnly"] and cookie.get("sameSite") == "Strict"

    browser.get(url + "/actors")
    body = _wait_text(browser, "greeter-1")
    assert "Greeter" in body and "greeter-0" in body and "ALIVE" in body
    assert "greeter-late" not in body
    # Live: an actor created now appears without reloading (the page re-reads itself).
    late = workload["make_greeter"]("greeter-late")
    body = _wait_text(browser, "greeter-late", timeout=30)
    assert "greeter-late" in body, "the actors page did not update itself"
    browser.save_screenshot(str(shots / "actors.png"))
    ray.kill(late)

    browser.get(url + "/tasks")
    body = _wait_text(browser, "explode")   # from the task events: states, names, failures
    assert "FAILED" in body and "square" in body and "Greeter.hello" in body
    assert "dashboard-test-boom" in body
    browser.save_screenshot(str(shots / "tasks.png"))
    browser.get(url + "/tasks?state=FAILED")
    _wait_text(browser, "explode")
    _click(browser, "css selector", "a[href^='/tasks/']")   # the failed one
    body = _wait_text(browser, "Traceback")
    assert "Traceback" in body and "ValueError: dashboard-test-boom" in body
    browser.save_screenshot(str(shots / "task_error.png"))

    browser.get(url + "/objects")
    body = _wait_text(browser, "2.0 MiB", timeout=30)
    assert workload["held"].hex()[:16] in body and "2.0 MiB" in body
    browser.save_screenshot(str(shots / "objects.png"))

    browser.get(url + "/timeline")
    body = _wait_text(browser, "Download")
    assert browser.find_elements("css selector", "svg.timeline rect")
    assert "worker" in body
    browser.save_screenshot(str(shots / "timeline.png"))

    browser.get(url + "/logs")
    body = _wait_text(browser, "scheduler-")
    assert "scheduler-" in body
    browser.save_screenshot(str(shots / "logs.png"))
    _click(browser, "partial link text", "scheduler-")
    body = _wait_text(browser, "metrics at http://")
    assert "metrics at http://" in body
    browser.save_screenshot(str(shots / "log_view.png"))

    # Logging out drops the cookie: the pages are closed again.
    _click(browser, "css selector", "header form button")
    deadline = time.monotonic() + 20
    while "/login" not in browser.current_url:   # the logout's redirect has landed
        assert time.monotonic() < deadline, "logging out did not lead to the login page"
        time.sleep(0.2)
    browser.get(url + "/actors")
    assert "/login" in browser.current_url
    assert "greeter-0" not in browser.page_source
    for name in ("login", "nodes", "actors", "tasks", "task_error", "objects", "timeline", "logs",
                 "log_view"):
        assert (shots / f"{name}.png").stat().st_size > 1000
    print(f"dashboard screenshots in {shots}")
