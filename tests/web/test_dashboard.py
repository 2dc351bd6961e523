"""The dashboard in headless Chromium, the views' query parameters, and the metrics the Grafana
dashboard reads — against one real bridge and one real worker (shared by every step here, to keep
the run short) fed known signed webhooks through the bridge. Both ask for credentials
(STREAMS_HTTP_BASIC_AUTH_FILE and STREAMS_HTTP_TOKEN_FILE): the browser logs in with basic auth,
everything else here sends the bearer token; the other tests run them without.

The browser is Debian's `chromium` driven through `chromium-driver` (selenium); nothing is
downloaded at run time. Without them the browser test skips, and under CI=true it fails.
STREAMS_SCREENSHOT=path writes the page's screenshot there (the README's is docs/dashboard.png).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import random
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from support.processes import Service, http_get
from support.worker import make_payload

from streams.bridge.signature import sign
from streams.dev.http import scrape_metrics
from streams.domain.deltas import totals
from streams.kafka.topics import ensure_project_topics
from streams.models.customer_deleted import parse_webhook
from streams.settings import Settings

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
SECRET = "dashboard-test-secret"
USER = "analyst"
PASSWORD = "dash-pass:" + os.urandom(6).hex()  # a colon in a password is fine
TOKEN = "dash-token-" + os.urandom(8).hex()
UNAUTHORIZED = b'{"error":"unauthorized","message":"authentication required"}'
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
DRIVER = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")


@dataclass
class Live:
    settings: Settings
    bridge: Service
    worker: Service
    sent: list[dict[str, Any]]  # every webhook payload delivered, duplicates included

    def send(self, payloads: list[dict[str, Any]]) -> None:
        for payload in payloads:
            body = json.dumps(payload).encode()
            req = urllib.request.Request(
                f"{self.bridge.url}/webhooks/voucherify",
                data=body,
                headers={
                    "content-type": "application/json",
                    "x-voucherify-signature": sign(SECRET, body),
                },
            )
            with urllib.request.urlopen(req, timeout=30) as resp:
                assert resp.status == 200
            self.sent.append(payload)

    def expected(self) -> dict[str, Any]:
        return totals([parse_webhook(json.loads(json.dumps(p))) for p in self.sent])

    def duplicates(self) -> int:
        return len(self.sent) - len({p["data"]["customer"]["id"] for p in self.sent})

    def get(self, path: str) -> tuple[int, Any]:
        return http_get(self.worker.url + path, 10, self.worker.auth)

    def login_url(self, path: str) -> str:
        """The worker's `path` with the basic-auth user and password in the URL."""
        host = self.worker.url.removeprefix("http://")
        return f"http://{USER}:{quote(PASSWORD, safe='')}@{host}{path}"


def payloads(start: int, n: int, duplicates: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    base = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=6)
    out = [make_payload(i, rng, base) for i in range(start, start + n)]
    for p in rng.sample(out, duplicates):
        out.insert(rng.randrange(len(out) + 1), p)
    return out


@pytest.fixture(scope="module")
def live(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("dashboard")
    unique = os.urandom(4).hex()
    settings = Settings.from_env(
        {},
        bootstrap_servers=kafka,
        topic_prefix=f"d{unique}.",
        app_id=f"dash-{unique}",
        data_dir=str(tmp / "data"),
        topic_partitions=3,
        store="memory://",
        webhook_secret=(SECRET,),
        dashboard_refresh_ms=500,
    )
    (tmp / "users").write_text(f"# the dashboard's readers\n{USER}:{PASSWORD}\n")
    (tmp / "tokens").write_text(f"{TOKEN}\n")  # first: what the tests' requests send
    settings = settings.with_(
        http_basic_auth_file=str(tmp / "users"), http_token_file=str(tmp / "tokens")
    )
    ensure_project_topics(settings)
    (tmp / "data").mkdir()
    bridge = Service("bridge", settings, tmp / "bridge.log").start()
    worker = Service("worker", settings, tmp / "worker.log").start()
    try:
        bridge.wait_ready("/readyz")
        worker.wait_ready("/readyz")
        yield Live(settings, bridge, worker, [])
    finally:
        worker.stop()
        bridge.stop()


def wait_for(what: str, check: Callable[[], Any], timeout: float, live: Live) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        assert live.worker.alive, f"the worker exited:\n{live.worker.tail()}"
        time.sleep(0.2)
    raise AssertionError(f"{what}: not so after {timeout}s (last: {last})\n{live.worker.tail()}")


def counted(live: Live) -> bool:
    status, body = live.get("/analytics/loyalty?dimension=total")
    want = live.expected()["loyalty"]["total"]["all"]["customers"]
    return status == 200 and body.get("total", {}).get("all", {}).get("customers") == want


# --- the browser ------------------------------------------------------------------------------


def _first(paths: tuple[str, ...], name: str) -> str | None:
    return next((p for p in paths if Path(p).exists()), None) or shutil.which(name)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = _first(CHROMIUM, "chromium")
    driver_path = _first(DRIVER, "chromedriver")
    why = None
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service as DriverService
    except ImportError as exc:
        why = f"selenium is not installed ({exc})"
    if why is None and (chromium is None or driver_path is None):
        why = "Debian's chromium and chromium-driver are not installed (./dev test installs them)"
    if why is not None:
        if CI:
            pytest.fail(f"no browser under CI=true: {why}")
        pytest.skip(why)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in CI's container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1180",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=DriverService(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def shown(driver: Any) -> dict[str, str]:
    ids = ("points-lost", "customers", "customers-with-points", "advocates-lost", "orphaned")
    out = {i: driver.find_element("id", i).get_attribute("data-value") for i in ids}
    out["duplicates"] = driver.find_element("id", "duplicates").get_attribute("data-value")
    out["state"] = driver.find_element("id", "status").get_attribute("data-state")
    return out


def reference(live: Live) -> dict[str, str]:
    want = live.expected()
    total = want["loyalty"]["total"]["all"]
    advocates = want["referrals"].get("advocates", {}).get("total", {})
    return {
        "points-lost": str(total["points_lost"]),
        "customers": str(total["customers"]),
        "customers-with-points": str(total["customers_with_points"]),
        "advocates-lost": str(advocates.get("advocates_lost", 0)),
        "orphaned": str(advocates.get("referred_customers_orphaned", 0)),
        "duplicates": str(live.duplicates()),
        "state": "current",
    }


CANVAS_PAINTED = """
const c = document.querySelector('#chart canvas');
if (!c) return 0;
const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
let n = 0;
for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) n++;
return n;
"""

BAR_COLOUR = """
const c = document.querySelector('#chart canvas');
const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
let n = 0;  // pixels of the bars' fill (blue), not the axes' grey
for (let i = 0; i < d.length; i += 4) if (d[i + 2] > 150 && d[i] < 150 && d[i + 3] > 0) n++;
return n;
"""


def test_dashboard_in_a_browser(live: Live, browser: Any) -> None:
    live.send(payloads(0, 120, 12, seed=11))
    wait_for("the first webhooks counted", lambda: counted(live), 90, live)
    # Basic auth, as a person logs in: Chromium answers the worker's 401 with the user and
    # password of the URL (what a person types at the prompt), then sends them with every
    # request to the worker, the page's polling of /dashboard/data included.
    browser.get(live.login_url("/"))  # redirects to /dashboard
    assert browser.current_url.endswith("/dashboard")
    browser.execute_script("window.__loaded = 'first';")  # gone if the page reloads
    want = reference(live)
    wait_for("the page shows the reference totals", lambda: shown(browser) == want, 30, live)
    assert browser.execute_script(CANVAS_PAINTED) > 1000, "the day chart drew nothing"
    assert browser.execute_script(BAR_COLOUR) > 200, "the day chart has no bars"
    campaigns = browser.find_element("id", "campaigns").text
    best = max(want_campaigns(live).items(), key=lambda kv: (kv[1], kv[0]))[0]
    assert best in campaigns

    live.send(payloads(120, 60, 6, seed=12))  # more webhooks: the page follows by itself
    wait_for("the new webhooks counted", lambda: counted(live), 90, live)
    counted_at = time.monotonic()
    want = reference(live)
    wait_for("the page shows the new totals", lambda: shown(browser) == want, 30, live)
    # The totals are on the page within 2 s of the tables (+ slack for a busy machine); the
    # duplicates come from committed offsets, which may trail by Faust's commit interval.
    assert browser.execute_script("return window.__loaded") == "first", "the page reloaded"
    lag_s = time.monotonic() - counted_at
    assert lag_s < 6, f"the page took {lag_s:.1f}s to follow the tables"

    for days in ("7", "90"):
        browser.find_element("css selector", f'#window button[data-days="{days}"]').click()
        assert browser.execute_script(BAR_COLOUR) > 200
    browser.find_element("css selector", '#window button[data-days="30"]').click()
    time.sleep(0.3)
    shot = Path(os.environ.get("STREAMS_SCREENSHOT", "") or live.worker.log.parent / "dash.png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000


def want_campaigns(live: Live) -> dict[str, int]:
    campaigns = live.expected()["loyalty"].get("campaign", {})
    return {k: v["points_lost"] for k, v in campaigns.items()}


# --- the views' query parameters ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/analytics/loyalty?dimension=planet", "dimension"),
        ("/analytics/loyalty?top=many", "top"),
        ("/analytics/loyalty?from=2025-02-30", "from"),
        ("/analytics/loyalty?from=2025-02-02&to=2025-02-01", "from"),
        ("/analytics/referrals?to=2025-01-01", "to"),
        ("/analytics/referrals?key=", "key"),
    ],
)
def test_bad_parameters_are_400_naming_them(live: Live, path: str, parameter: str) -> None:
    status, body = live.get(path)
    assert status == 400, (status, body)
    assert body["parameter"] == parameter and body["error"] == "bad parameter"


def test_query_parameters_filter_the_whole_app(live: Live) -> None:
    if not live.sent:
        live.send(payloads(0, 40, 4, seed=11))
    wait_for("counted", lambda: counted(live), 90, live)
    want = live.expected()
    status, body = live.get("/analytics/loyalty?dimension=campaign&top=2")
    assert status == 200 and list(body) == ["campaign"]
    ranked = sorted(
        want["loyalty"]["campaign"].items(), key=lambda kv: (-kv[1]["points_lost"], kv[0])
    )
    assert list(body["campaign"]) == [k for k, _ in ranked[:2]]
    days = sorted(want["loyalty"]["day"])
    lo, hi = days[1], days[-2]
    status, body = live.get(f"/analytics/loyalty?dimension=day&from={lo}&to={hi}")
    assert status == 200 and sorted(body["day"]) == [d for d in days if lo <= d <= hi]
    ref = next(iter(want["referrals"]["referrer"]))
    status, body = live.get(f"/analytics/referrals?dimension=referrer&key={ref}")
    assert status == 200 and list(body["referrer"]) == [ref]
    assert (
        body["referrer"][ref]["referees_lost"]
        == want["referrals"]["referrer"][ref]["referees_lost"]
    )


# --- metrics and the deploy/ dashboards -------------------------------------------------------

_NAME = re.compile(r"\b((?:bridge|streams_worker)_[a-z0-9_]+)")


def _scrape(service: Service) -> set[str]:
    samples = scrape_metrics(service.url + "/metrics", headers=service.auth)
    return {sample.split("{")[0] for sample in samples}


def _series(name: str) -> set[str]:
    """The sample names a PromQL metric name may refer to."""
    return {
        name,
        name.removesuffix("_bucket"),
        name.removesuffix("_sum"),
        name.removesuffix("_count"),
    }


def test_grafana_panels_read_metrics_that_exist(live: Live) -> None:
    if not live.sent:
        live.send(payloads(0, 40, 4, seed=11))
    wait_for("counted", lambda: counted(live), 90, live)
    bad = json.dumps({"type": "customer.deleted", "data": {"customer": {"id": 7}}}).encode()
    req = urllib.request.Request(
        f"{live.bridge.url}/webhooks/voucherify",
        data=bad,
        headers={"content-type": "application/json", "x-voucherify-signature": sign(SECRET, bad)},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:  # dead-lettered: a series to show
        urllib.request.urlopen(req, timeout=30)
    assert refused.value.code == 422
    worker, bridge = _scrape(live.worker), _scrape(live.bridge)
    exposed = worker | bridge
    for must in (
        "streams_worker_events_consumed_total",
        "streams_worker_customers_counted_total",
        "streams_worker_duplicates_dropped_total",
        "streams_worker_batch_size_bucket",
        "streams_worker_batch_latency_seconds_bucket",
        "streams_worker_consumer_lag",
        "streams_worker_table_keys",
        "streams_worker_rebalances_total",
        "streams_worker_recovery_remaining_records",
        "streams_worker_restarts_total",
        "streams_worker_output_records_total",
        "streams_worker_produce_errors_total",
        "streams_worker_skipped_records_total",
    ):
        assert must in worker, must
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "voucherify-streams.json").read_text())
    assert dashboard["panels"], "no panels"
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = _NAME.findall(target["expr"])
            assert names, f"{panel['title']}: no metric in {target['expr']}"
            for name in names:
                assert _series(name) & exposed, f"{panel['title']}: {name} is not exposed"
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert {"voucherify-streams-bridge", "voucherify-streams-worker"} <= set(jobs)
    # The worker's own figures agree with what it was sent.
    status, text = http_get(live.worker.url + "/metrics", 10, live.worker.auth)
    assert status == 200
    customers = float(re.search(r"^streams_worker_customers_counted_total (\S+)$", text, re.M)[1])  # type: ignore[index]
    duplicates = float(re.search(r"^streams_worker_duplicates_dropped_total (\S+)$", text, re.M)[1])  # type: ignore[index]
    assert customers == len({p["data"]["customer"]["id"] for p in live.sent})
    assert duplicates == live.duplicates()


# --- who may read them ------------------------------------------------------------------------


def _ask(url: str, path: str, method: str = "GET", **headers: str) -> tuple[int, dict, bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_only_the_probes_are_open(live: Live) -> None:
    worker, bridge = live.worker.url, live.bridge.url
    for url in (worker, bridge):
        for probe in ("/healthz", "/readyz"):
            assert _ask(url, probe)[0] == 200, (url, probe)
    protected = [
        (worker, path)
        for path in (
            "/analytics/loyalty",
            "/analytics/referrals?dimension=referrer&top=3",
            "/analytics/loyalty?local=1",
            "/dashboard",
            "/dashboard/data",
            "/dashboard/static/dashboard.js",
            "/dashboard/static/uPlot.iife.min.js",
            "/metrics",
            "/",
            "/router/",  # Faust's own pages: off, and behind the credentials like any path
            "/table/",
            "/table/loyalty-points-lost/",
            "/stats/",
            "/no-such-page",
        )
    ] + [(bridge, "/metrics")]
    wrong = (
        {},
        {"Authorization": _basic(USER, "not-the-password")},
        {"Authorization": _basic("someone", PASSWORD)},
        {"Authorization": "Bearer not-the-token"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": "Basic !!!"},
        {"Authorization": TOKEN},
    )
    for url, path in protected:
        for headers in wrong:
            status, got, body = _ask(url, path, **headers)
            # The same answer whatever is wrong and whatever the path: nothing learnt.
            assert (status, body) == (401, UNAUTHORIZED), (url, path, headers, status, body)
            assert got["www-authenticate"] == (
                'Basic realm="voucherify-streams", Bearer realm="voucherify-streams"'
            )
            assert PASSWORD not in str(got) and TOKEN not in str(got)
    assert _ask(worker, "/metrics", "HEAD")[0] == 401
    assert _ask(bridge, "/metrics", "HEAD")[0] == 401
    for authorization in (_basic(USER, PASSWORD), f"Bearer {TOKEN}"):
        for url, path in protected:
            status, got, body = _ask(url, path, Authorization=authorization)
            if path == "/":
                assert status == 302 and got["location"] == "/dashboard"
            elif path.startswith(("/router", "/table", "/stats", "/no-such")):
                assert status == 404, (path, status, body)  # not served at all
            else:
                assert status in (200, 503), (path, status, body)  # 503: not ready is fine
    # Refusals are counted (and logged at most every 10 s, without the credential).
    status, text = http_get(worker + "/metrics", 10, live.worker.auth)
    assert status == 200
    refused = re.findall(
        r'^streams_worker_http_auth_failures_total\{reason="(\w+)"\} (\S+)$', text, re.M
    )
    assert {reason for reason, n in refused if float(n) > 0} >= {"missing", "wrong", "malformed"}
    status, text = http_get(bridge + "/metrics", 10, live.bridge.auth)
    for reason, n in (("missing", 2), ("wrong", 4), ("malformed", 2)):
        assert f'bridge_http_auth_failures_total{{reason="{reason}"}} {n}.0' in text
    for service in (live.worker, live.bridge):
        log = service.log.read_text()
        assert "without valid credentials" in log
        assert PASSWORD not in log and TOKEN not in log
