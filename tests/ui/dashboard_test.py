"""The operator dashboard (/ui/) in headless Chromium, driven by Selenium,
against a real cyme-branch that tests/ui/run.sh started with a token and an
app holding two running cyme-worker instances (w1, w2).

The tests run in order, each on the state the previous left, and stop at
the first failure:

0. the branch serves /ui/ (its three files) and /events/, and sends /ui to
   /ui/ with a 301 whose JSON body names the location;
1. the page lists both instances, running, with the pids the API gives;
2. after kill -9 of w1's pid the page shows its new pid and the event of
   its death or restart, without a reload;
3. Disable on w2 asks for the token in the page's dialog; a wrong one is
   refused with the branch's error, the right one disables w2: the page
   shows it disabled and the API agrees its process is gone;
4. markup in a disabled reason set through the API shows as text;
5. (--reads-need-token, the branch started again with --token-for-reads)
   the page asks for the token before it shows anything, then lists the
   instances and follows the event stream with it.

Every wait is a condition with a deadline (WebDriverWait). Screenshots go
to --screenshots.

    CYME_UI_TEST_TOKEN=T python3 dashboard_test.py --branch URL --app APP \
        --screenshots DIR [--page URL]

--page is the dashboard's address (default: BRANCH/ui/).
"""

import argparse
import http.client
import json
import os
import signal
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

#: A verification round is 2 s; a restart after kill -9 is immediate, the
#: first answer of a new worker on the embedded cluster takes seconds.
DEADLINE_S = 60
W1, W2 = "w1", "w2"

BRANCH: str
PAGE: str
APP: str
TOKEN: str
SCREENSHOTS: Path


def call(method: str, path: str, token: str | None = None, body: dict | None = None) -> tuple[int, object]:
    """(status, JSON answer) of one request to the branch."""
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else (b"" if method != "GET" else None)
    request = urllib.request.Request(BRANCH + path, method=method, headers=headers, data=data)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def instance(name: str) -> dict:
    status, answer = call("GET", f"/{APP}/instances/{name}/")
    assert status == 200, f"GET instance {name}: {status} {answer}"
    return answer


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(what: str, probe, timeout: float = DEADLINE_S):
    """The first truthy value of probe(), polled (the API, not the page)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {value!r}")
        time.sleep(0.1)


class Browser(unittest.TestCase):
    """A headless Chromium for the tests of a class, and what they share."""
    driver: webdriver.Chrome
    load_id: str

    @classmethod
    def setUpClass(cls):
        options = Options()
        options.binary_location = "/usr/bin/chromium"
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1600,1000", "--no-first-run", "--disable-extensions"):
            options.add_argument(flag)
        cls.profile = tempfile.TemporaryDirectory(prefix="cyme-ui-chromium-")
        options.add_argument(f"--user-data-dir={cls.profile.name}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        cls.driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        cls.driver.set_page_load_timeout(DEADLINE_S)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.shot("final")
            for entry in cls.driver.get_log("browser"):
                print(f"browser console: {entry.get('level')}: {entry.get('message')}", file=sys.stderr)
        finally:
            cls.driver.quit()
            cls.profile.cleanup()

    # -- helpers ----------------------------------------------------------------

    @classmethod
    def shot(cls, name: str) -> None:
        path = SCREENSHOTS / f"{name}.png"
        cls.driver.save_screenshot(str(path))
        print(f"screenshot: {path}", file=sys.stderr)

    def until(self, what: str, condition, timeout: float = DEADLINE_S):
        """WebDriverWait for `condition(driver)`, failing with `what` and the
        page's state."""
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.1,
                                 ignored_exceptions=(StaleElementReferenceException,)).until(condition)
        except TimeoutException:
            self.shot("timeout")
            self.fail(f"timed out after {timeout} s waiting for {what}; page: {self.page_state()}")

    def page_state(self) -> str:
        return json.dumps(self.driver.execute_script("""
            const rows = [...document.querySelectorAll('#instances tbody tr')].map(tr =>
              [...tr.cells].map(c => c.textContent.trim()).join(' | '));
            const events = [...document.querySelectorAll('#events tbody tr')].slice(0, 10).map(tr =>
              [...tr.cells].map(c => c.textContent.trim()).join(' | '));
            return {connection: document.querySelector('#connection').dataset.state,
                    errors: document.querySelector('#errors').textContent, rows, events};
        """), indent=1)

    def row(self, name: str):
        rows = self.driver.find_elements(By.CSS_SELECTOR, f'#instances tbody tr[data-app="{APP}"][data-name="{name}"]')
        return rows[0] if rows else None

    def cell(self, name: str, cls: str) -> str | None:
        row = self.row(name)
        return row.find_element(By.CSS_SELECTOR, f"td.{cls}").text.strip() if row else None

    def row_state(self, name: str) -> str | None:
        row = self.row(name)
        return row.get_attribute("data-state") if row else None

    def event_kinds(self, name: str) -> set[str]:
        return set(self.driver.execute_script(
            "return [...document.querySelectorAll('#events tbody tr')]"
            ".filter(tr => tr.dataset.app === arguments[0] && tr.dataset.instance === arguments[1])"
            ".map(tr => tr.dataset.kind);", APP, name))

    def assert_not_reloaded(self) -> None:
        marker = self.driver.execute_script(
            "return [window.cymeDashboard && window.cymeDashboard.loadId, window.uiTestMarker];")
        self.assertEqual(marker, [self.load_id, "set by the test"], "the page was reloaded")

    def button(self, name: str, verb: str):
        return self.driver.find_element(By.CSS_SELECTOR, f'button[aria-label="{verb} {name} ({APP})"]')

    def open_dialog(self):
        return self.until("the token dialog", lambda d: d.execute_script(
            "const d = document.querySelector('#token-dialog'); return d.open && d;"))

    def give_token(self, token: str) -> None:
        dialog = self.open_dialog()
        field = dialog.find_element(By.CSS_SELECTOR, "input#token-input")
        label = dialog.find_element(By.CSS_SELECTOR, 'label[for="token-input"]').text
        self.assertEqual(label, "Token")
        self.assertEqual(field.get_attribute("type"), "password")
        self.until("focus in the token field",
                   lambda d: d.switch_to.active_element.get_attribute("id") == "token-input")
        field.send_keys(token)
        field.send_keys(Keys.ENTER)
        self.until("the token dialog to close", lambda d: not d.execute_script(
            "return document.querySelector('#token-dialog').open;"))


class Dashboard(Browser):
    """The page on a branch whose reads are open (tests 0-4)."""

    # -- the tests, in order -------------------------------------------------------

    def test_0_the_branch_serves_the_page_and_the_event_stream(self):
        page = PAGE.rstrip("/") + "/"
        for path, content_type in (("", "text/html"), ("app.js", "text/javascript"), ("app.css", "text/css")):
            try:
                with urllib.request.urlopen(page + path, timeout=30) as answer:
                    self.assertTrue(answer.headers.get("Content-Type", "").startswith(content_type),
                                    f"{page + path}: {answer.headers.get('Content-Type')}")
            except urllib.error.HTTPError as e:
                self.fail(f"GET {page + path} answered {e.code}: the branch does not serve the dashboard")
        with urllib.request.urlopen(PAGE.rsplit("/ui/", 1)[0] + "/events/", timeout=30) as stream:
            self.assertTrue(stream.headers.get("Content-Type", "").startswith("text/event-stream"),
                            f"/events/: {stream.headers.get('Content-Type')}")
        base = urllib.parse.urlsplit(PAGE)
        conn = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
        try:
            conn.request("GET", "/ui")
            answer = conn.getresponse()
            body = answer.read()
            self.assertEqual(answer.status, 301)
            self.assertEqual(answer.getheader("Location"), "/ui/")
            self.assertEqual(json.loads(body), {"location": "/ui/"})
        finally:
            conn.close()

    def test_1_lists_the_instances_running_with_their_pids(self):
        pids = {name: wait_for(f"{name} running in the API",
                               lambda name=name: (i := instance(name))["state"] == "running" and i["pid"])
                for name in (W1, W2)}
        self.driver.get(PAGE)
        self.load_id = type(self).load_id = self.until(
            "the dashboard's script", lambda d: d.execute_script("return window.cymeDashboard && window.cymeDashboard.loadId;"))
        self.driver.execute_script("window.uiTestMarker = 'set by the test';")
        self.until("the event stream to be live", lambda d: d.find_element(
            By.ID, "connection").get_attribute("data-state") == "live")
        for name, pid in pids.items():
            self.until(f"{name} running with pid {pid}",
                       lambda d, name=name, pid=pid: self.row_state(name) == "running"
                       and self.cell(name, "pid") == str(pid))
        for name in (W1, W2):
            row = self.row(name)
            self.assertEqual(row.find_element(By.CSS_SELECTOR, "th[scope=row]").text, name)
            self.assertIn("tasks", self.cell(name, "queues"))
        # Controls are labelled and reachable; the app filter defaults to all.
        select = Select(self.driver.find_element(By.ID, "app-filter"))
        self.assertEqual(self.driver.find_element(By.CSS_SELECTOR, 'label[for="app-filter"]').text, "App")
        self.assertEqual(select.first_selected_option.text, "all apps")
        self.assertIn(APP, [o.get_attribute("value") for o in select.options])
        headers = self.driver.find_elements(By.CSS_SELECTOR, "#instances thead th")
        self.assertTrue(headers and all(h.get_attribute("scope") == "col" for h in headers))
        unlabelled = self.driver.execute_script(
            "return [...document.querySelectorAll('button, select, input')].filter(e =>"
            " !(e.getAttribute('aria-label') || e.textContent.trim() || (e.id && document.querySelector(`label[for='${e.id}']`))))"
            ".map(e => e.outerHTML);")
        self.assertEqual(unlabelled, [], "controls without a label")
        select.select_by_value(APP)
        self.until("the filtered list", lambda d: self.row(W1) and self.row(W2))
        select.select_by_value("")
        self.shot("1-list")

    def test_2_kill_shows_the_new_pid_without_a_reload(self):
        old = instance(W1)["pid"]
        self.assertEqual(self.cell(W1, "pid"), str(old))
        os.kill(old, signal.SIGKILL)
        self.until("a new pid for w1 on the page",
                   lambda d: self.row_state(W1) == "running"
                   and (self.cell(W1, "pid") or "-").isdigit() and self.cell(W1, "pid") != str(old))
        self.until("w1's died or restarted event on the page",
                   lambda d: self.event_kinds(W1) & {"died", "restarted"})
        self.assert_not_reloaded()
        # Once the new process answers, the page shows it running, with the
        # pid the API gives.
        now = wait_for("w1 running again in the API",
                       lambda: (i := instance(W1))["state"] == "running" and i["pid"] and i)
        self.assertNotEqual(now["pid"], old)
        self.until(f"w1 running with pid {now['pid']} on the page",
                   lambda d: self.row_state(W1) == "running" and self.cell(W1, "pid") == str(now["pid"]))
        self.assertFalse(alive(old))
        # Branches that report them: the kill as w1's last exit, the uptimes.
        if now.get("last_exit") is not None:
            self.until("w1's last exit on the page",
                       lambda d: "KILL" in (self.cell(W1, "last-exit") or ""))
        for name in (W1, W2):
            if isinstance(instance(name).get("uptime_s"), (int, float)):
                self.assertRegex(self.cell(name, "uptime"), r"^\d+[dhms]")
        self.assert_not_reloaded()
        self.shot("2-after-kill")

    def test_3_disable_asks_for_the_token_and_stops_the_instance(self):
        pid = instance(W2)["pid"]
        self.assertTrue(pid and alive(pid))
        self.assertIsNone(self.driver.execute_script("return sessionStorage.getItem('cyme.token');"))

        # A wrong token: the branch's own sentence is shown, nothing changes.
        _, refused = call("POST", f"/{APP}/instances/{W2}/disable/", token="wrong")
        self.assertIn("error", refused)
        self.button(W2, "Disable").click()
        self.give_token("wrong-" + TOKEN)
        self.until("the branch's error on the page",
                   lambda d: refused["error"] in d.find_element(By.ID, "errors").text)
        self.assertIn(f"Disable {W2} ({APP})", self.driver.find_element(By.ID, "errors").text)
        self.assertEqual(instance(W2)["pid"], pid)
        self.assertTrue(instance(W2)["is_enabled"])
        self.shot("3a-wrong-token")

        # The right one, by keyboard this time.
        disable = self.button(W2, "Disable")
        self.driver.execute_script("arguments[0].focus();", disable)
        disable.send_keys(Keys.ENTER)
        self.give_token(TOKEN)
        self.until("w2 disabled on the page",
                   lambda d: self.row_state(W2) in ("disabled", "stopped") and self.cell(W2, "pid") == "-")
        self.assertEqual(self.driver.execute_script("return sessionStorage.getItem('cyme.token');"), TOKEN)
        self.assertFalse(self.button(W2, "Enable").get_attribute("disabled"))
        self.assertTrue(self.button(W2, "Disable").get_attribute("disabled"))
        now = instance(W2)
        self.assertFalse(now["is_enabled"])
        self.assertIn(now["state"], ("disabled", "stopped"))
        self.assertFalse(now["pid"])
        wait_for(f"w2's old process {pid} to be gone", lambda: not alive(pid))
        self.until("w2's disabled or stopped event on the page",
                   lambda d: self.event_kinds(W2) & {"disabled", "stopped"})
        # The keyboard user is still in the row, on the button left usable;
        # the refused attempt's error went with the success.
        self.assertEqual(self.driver.switch_to.active_element.get_attribute("aria-label"), f"Enable {W2} ({APP})")
        self.assertNotIn(refused["error"], self.driver.find_element(By.ID, "errors").text)
        self.assert_not_reloaded()
        self.shot("3-after-disable")

    def test_4_text_from_the_branch_is_shown_as_text(self):
        reason = '<img src=x onerror="window.uiTestInjected=1"><b>bold</b> & more'
        status, answer = call("POST", f"/{APP}/instances/{W1}/disable/", token=TOKEN, body={"reason": reason})
        self.assertEqual(status, 200, answer)
        self.until("w1's reason on the page, as text",
                   lambda d: self.row_state(W1) in ("disabled", "stopped")
                   and reason in self.row(W1).find_element(By.CSS_SELECTOR, ".reason").text)
        self.assertEqual(self.driver.find_elements(By.CSS_SELECTOR, "main img, main b"), [])
        self.assertIsNone(self.driver.execute_script("return window.uiTestInjected ?? null;"))
        self.assert_not_reloaded()
        self.shot("4-text")


class ReadsBehindToken(Browser):
    """The page on the same branch started again with --token-for-reads
    (after tests 0-4: w1 and w2 are disabled)."""

    def test_5_the_page_asks_for_the_token_before_it_shows_anything(self):
        # The API wants the token for every read now, not for the page.
        self.assertEqual(call("GET", "/")[0], 401)
        self.assertEqual(call("GET", f"/{APP}/instances/")[0], 401)
        self.assertEqual(call("GET", "/", token=TOKEN), (200, [APP]))
        with urllib.request.urlopen(PAGE, timeout=30) as answer:
            self.assertEqual(answer.status, 200)
        self.driver.get(PAGE)
        self.open_dialog()
        reason = self.driver.find_element(By.CSS_SELECTOR, "#token-reason").text
        self.assertIn("requires a token", reason)
        self.assertEqual(self.driver.find_elements(
            By.CSS_SELECTOR, f'#instances tbody tr[data-app="{APP}"]'), [])
        self.shot("5a-asked-first")
        self.give_token(TOKEN)
        self.until("both instances listed with the token",
                   lambda d: self.row(W1) is not None and self.row(W2) is not None)
        self.until("the event stream live with the token", lambda d: d.execute_script(
            "return document.querySelector('#connection').dataset.state === 'live';"))
        # An event reaches the page through the stream it follows with the
        # token: enabling w1 (through the API) shows w1 running again.
        status, answer = call("POST", f"/{APP}/instances/{W1}/enable/", token=TOKEN)
        self.assertEqual(status, 200, answer)
        self.until("w1 running again on the page, and its event from the stream",
                   lambda d: self.row_state(W1) == "running" and self.event_kinds(W1))
        self.shot("5b-with-token")


def main() -> int:
    global BRANCH, PAGE, APP, TOKEN, SCREENSHOTS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--branch", required=True, help="the branch's HTTP API, http://HOST:PORT")
    parser.add_argument("--app", required=True)
    parser.add_argument("--screenshots", required=True, type=Path)
    parser.add_argument("--page", help="the dashboard (default: BRANCH/ui/)")
    parser.add_argument("--reads-need-token", action="store_true",
                        help="the branch runs with --token-for-reads: run test 5, not 0-4")
    args = parser.parse_args()
    BRANCH = args.branch.rstrip("/")
    PAGE = args.page or f"{BRANCH}/ui/"
    APP = args.app
    TOKEN = os.environ.get("CYME_UI_TEST_TOKEN", "")
    if not TOKEN:
        parser.error("CYME_UI_TEST_TOKEN (the branch's token) is not set")
    SCREENSHOTS = args.screenshots
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tests = "ReadsBehindToken" if args.reads_need_token else "Dashboard"
    result = unittest.main(argv=[sys.argv[0], "-v", tests], failfast=True, exit=False).result
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
