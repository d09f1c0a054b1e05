"""The playground (`GET /` of `kompress serve`) in a real browser: Debian's chromium and chromedriver,
driven headless by selenium, against the binary on a loopback port with the fixture models.

Run: `KOMPRESS_BIN=target/release/kompress python -m pytest -q -s tests/browser` (selenium and pytest
in the Python; chromium and chromedriver on PATH or at CHROMIUM / CHROMEDRIVER). With
`PLAYGROUND_SCREENSHOT=path` it writes the README's screenshot there; `PLAYGROUND_MODEL=dir` serves another
ModernBERT model than the `v5` fixture (for the timing), `PLAYGROUND_SERVE_ARGS` adds flags to
`kompress serve` (e.g. `--deadline-ms 300000`) and `PLAYGROUND_WAIT` (s) bounds each step. It prints the page's weight and
the time to the first result for a 3,000-word text, measured in the page (performance.now around the
fetch and the render).
"""

import base64
import hashlib
import json
import os
import pathlib
import queue
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("KOMPRESS_BIN", str(ROOT / "target/release/kompress"))
TOKEN = "playground-t0ken"
# Seconds the longest step may take (PLAYGROUND_WAIT: more for a full-size model on a slow machine).
WAIT = float(os.environ.get("PLAYGROUND_WAIT", "30"))


def find(env: str, names: list) -> str:
    for candidate in [os.environ.get(env)] + [shutil.which(n) for n in names]:
        if candidate and os.path.exists(candidate):
            return candidate
    pytest.fail(f"no {names[0]}: install Debian's chromium and chromium-driver, or set {env}")


class Serve:
    """`kompress serve --port 0` on loopback; its address read from its log. `model`: a directory, or a
    list of `NAME=directory` for several models."""

    def __init__(self, model, token: str = None, flags: tuple = ()):
        args = [BIN, "serve", "--host", "127.0.0.1", "--port", "0", "--device", "cpu"]
        for m in [model] if isinstance(model, str) else model:
            name, _, path = m.rpartition("=")
            args += ["-m", (name + "=" if name else "") + str(ROOT / path)]
        if token:
            args += ["--token", token]
        args += list(flags) + os.environ.get("PLAYGROUND_SERVE_ARGS", "").split()
        env = dict(os.environ, KOMPRESS_DTYPE="f32", RUST_LOG="info", NO_COLOR="1")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(l) for l in self.proc.stdout], daemon=True).start()
        deadline = time.monotonic() + WAIT
        self.url = None
        log = []
        while self.url is None:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                pytest.fail("kompress serve printed no address in time:\n" + "".join(log))
            log.append(line)
            m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
            if m:
                self.url = m.group(1)
        while True:
            try:
                if urllib.request.urlopen(self.url + "/readyz", timeout=5).status == 200:
                    break
            except urllib.error.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail("the model did not load in time")
            time.sleep(0.05)

    def post(self, path: str, body: dict, token: str = None):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.url + path, json.dumps(body).encode(), headers)
        return json.load(urllib.request.urlopen(req, timeout=WAIT))

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def server():
    # PLAYGROUND_MODEL: another ModernBERT model to serve (e.g. a full-size one, for the timing).
    s = Serve(os.environ.get("PLAYGROUND_MODEL", "tests/fixtures/models/v5"), token=TOKEN)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def driver():
    options = webdriver.ChromeOptions()
    options.binary_location = find("CHROMIUM", ["chromium", "chromium-browser", "google-chrome"])
    for arg in ["--headless=new", "--disable-gpu", "--window-size=1280,1000", "--no-first-run", "--disable-extensions"]:
        options.add_argument(arg)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=find("CHROMEDRIVER", ["chromedriver"]))
    d = webdriver.Chrome(options=options, service=service)
    d.set_page_load_timeout(WAIT)
    d.set_script_timeout(WAIT)
    yield d
    d.quit()


def wait(d, condition, message):
    return WebDriverWait(d, WAIT).until(condition, message)


def open_page(d, server, token=TOKEN, before=""):
    """Loads the page with `token` in the tab's session (as the page keeps it) and waits for its pickers."""
    # The token is in the tab's session storage before the page's script runs (as after a user entered
    # it once), so that the page's first calls carry it.
    d.get_log("browser")  # what earlier pages logged is theirs
    script = f"sessionStorage.setItem('kompress-token', {json.dumps(token)});" + before
    added = d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": script})
    try:
        d.get(server.url + "/")
    finally:
        d.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": added["identifier"]})
    wait(d, lambda d: len(Select(d.find_element(By.ID, "method-a")).options) > 0, "the method picker filled")
    wait(d, lambda d: "model" in d.find_element(By.ID, "server").text, "the server's model shown")


def set_text(d, element_id, text):
    el = d.find_element(By.ID, element_id)
    d.execute_script("arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'))", el, text)


def choose(d, element_id, value):
    Select(d.find_element(By.ID, element_id)).select_by_value(value)


def set_value(d, element_id, value):
    el = d.find_element(By.ID, element_id)
    el.clear()
    el.send_keys(str(value))


def run_and_wait(d, panels=("a",)):
    before = d.execute_script("return window.kompressTimings.length")
    d.find_element(By.ID, "run").click()
    wait(
        d,
        lambda d: d.execute_script("return window.kompressTimings.length") > before
        or d.find_element(By.ID, "error").text,
        "a result or an error",
    )
    assert d.find_element(By.ID, "error").text == ""
    for p in panels:
        d.find_element(By.ID, f"result-{p}")


def console_errors(d):
    """The browser log's errors."""
    return [e for e in d.get_log("browser") if e["level"] == "SEVERE"]


def fixture_text(words=None):
    text = (ROOT / "tests/fixtures/texts/gpl3_excerpt.txt").read_text()
    if words:
        base = text.split()
        text = " ".join((base * (words // len(base) + 1))[:words])
    return text


def test_page_loads_without_console_errors_under_its_policy(server, driver):
    with urllib.request.urlopen(server.url + "/", timeout=WAIT) as r:
        html = r.read().decode()
        csp = r.headers["Content-Security-Policy"]
    # The CSP's hashes are the page's own inline script and style (scripts/playground_csp.py --write).
    for tag in ("script", "style"):
        (body,) = re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.S)
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"{tag}-src 'sha256-{digest}'" in csp, f"stale {tag} hash: run scripts/playground_csp.py --write"
    open_page(driver, server)
    methods = [o.get_attribute("value") for o in Select(driver.find_element(By.ID, "method-a")).options]
    assert methods == ["kompress", "headroom", "ctxprune"], "the ModernBERT model's methods"
    assert console_errors(driver) == []
    # Every control has its label.
    for el in driver.find_elements(By.CSS_SELECTOR, "input, select, textarea"):
        assert driver.find_elements(By.CSS_SELECTOR, f"label[for='{el.get_attribute('id')}']"), el.get_attribute("id")
    print(f"\npage weight: {len(html.encode())} bytes")


def test_compressing_shows_the_apis_text_and_a_del_per_dropped_word(server, driver):
    open_page(driver, server)
    text = fixture_text()
    # Opened as a file, as a user would.
    driver.find_element(By.ID, "file").send_keys(str(ROOT / "tests/fixtures/texts/gpl3_excerpt.txt"))
    wait(driver, lambda d: d.find_element(By.ID, "text").get_attribute("value") == text, "the file's text")
    choose(driver, "rule-a", "ratio")
    set_value(driver, "value-a", 0.4)
    run_and_wait(driver)
    api = server.post("/v1/compress", {"text": text, "options": {"ratio": 0.4}}, TOKEN)
    shown = driver.find_element(By.ID, "compressed-a").get_attribute("value")
    assert shown == api["compressed"]
    dels = driver.find_elements(By.CSS_SELECTOR, "#result-a .annotated del")
    assert len(dels) == api["original_words"] - api["kept_words"] > 0
    # A word's score is on hover, and protections are marked with their reason.
    assert re.search(r"score \d\.\d{3}", dels[0].get_attribute("title"))
    protected = driver.find_elements(By.CSS_SELECTOR, "#result-a .annotated .prot")
    assert protected and all("protected: " in p.get_attribute("title") for p in protected)
    counts = {
        e.get_attribute("data-count"): e.text for e in driver.find_elements(By.CSS_SELECTOR, "#result-a .counts dd")
    }
    assert counts["cl100k tokens"] == f"{api['original_tokens']} → {api['compressed_tokens']}"
    assert console_errors(driver) == []


def test_side_by_side_shows_both_and_marks_where_they_disagree(server, driver):
    open_page(driver, server)
    text = fixture_text()
    set_text(driver, "text", text)
    driver.find_element(By.ID, "compare").click()
    choose(driver, "method-b", "ctxprune")
    shot = os.environ.get("PLAYGROUND_SCREENSHOT")
    if shot:
        # A short text, so that the screenshot shows the whole of both panels.
        start = text.index("The GNU General Public License is a free")
        set_text(driver, "text", text[start : start + 1500])
    run_and_wait(driver, panels=("a", "b"))
    ctx = server.post("/v1/ctxprune/compress", {"text": driver.find_element(By.ID, "text").get_attribute("value")}, TOKEN)
    assert driver.find_element(By.ID, "compressed-b").get_attribute("value") == ctx["text"]
    assert driver.find_element(By.ID, "compressed-a").get_attribute("value")
    differ_a = driver.find_elements(By.CSS_SELECTOR, "#result-a .differ")
    differ_b = driver.find_elements(By.CSS_SELECTOR, "#result-b .differ")
    assert differ_a and differ_b, "a pipeline and ctxprune disagree somewhere"
    # Outlined are exactly the words over whose characters the two results' fates differ.
    shown = driver.find_element(By.ID, "text").get_attribute("value")
    a, b = (
        server.post("/v1/playground/compress", {"method": m, "text": shown, "options": o}, TOKEN)["words"]
        for m, o in [("kompress", {"mode": "card"}), ("ctxprune", {})]
    )
    want_a, want_b = expected_disagreements(a, b)
    for side, want in (("a", want_a), ("b", want_b)):
        els = driver.find_elements(By.CSS_SELECTOR, f"#result-{side} .annotated span, #result-{side} .annotated del")
        assert ["differ" in e.get_attribute("class").split() for e in els] == want
    assert f"{len(differ_a)} words differ" in driver.find_element(By.CSS_SELECTOR, "#result-a .legend").text
    assert console_errors(driver) == []
    # Readable in a narrow window: the panels stack, nothing overflows sideways.
    driver.set_window_size(420, 900)
    try:
        wide = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        tops = [driver.find_element(By.ID, f"result-{p}").rect["y"] for p in "ab"]
        assert wide <= 0 and tops[1] > tops[0], (wide, tops)
    finally:
        driver.set_window_size(1280, 1000)
    if shot:
        driver.set_window_size(1280, 900)
        driver.execute_script("document.getElementById('run').scrollIntoView()")
        driver.save_screenshot(shot)


def expected_disagreements(a, b):
    def spans(words):
        out, pos = [], 0
        for w in words:
            start = pos + len(w["ws"])
            pos = start + len(w["text"])
            out.append((start, pos))
        return out

    sa, sb = spans(a), spans(b)
    da = [any(a[i]["kept"] != b[k]["kept"] for k, (s, e) in enumerate(sb) if s < ea and e > sa_) for i, (sa_, ea) in enumerate(sa)]
    db = [any(b[k]["kept"] != a[i]["kept"] for i, (s, e) in enumerate(sa) if s < eb and e > sb_) for k, (sb_, eb) in enumerate(sb)]
    return da, db


def test_eviction_shows_kept_and_evicted_lines(server, driver):
    open_page(driver, server)
    lines = [f"worker {i}: request {1000 + i} served in {i % 7} ms" for i in range(60)]
    lines[30] = "worker 30: ERROR database timeout on replica db-7"
    context = "\n".join(lines)
    set_text(driver, "question", "")
    driver.find_element(By.ID, "question").send_keys("Which database timed out?")
    set_text(driver, "context", context)
    driver.find_element(By.ID, "evict").click()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#evict-result li"), "the lines")
    api = server.post(
        "/v1/evict", {"context": context, "question": "Which database timed out?", "budget": 0.35}, TOKEN
    )
    items = driver.find_elements(By.CSS_SELECTOR, "#evict-result li")
    assert len(items) == len(lines)
    kept = [i for i, li in enumerate(items) if "kept" in li.get_attribute("class").split()]
    assert 0 < len(kept) < len(lines)
    assert kept == api["kept_lines"]
    assert console_errors(driver) == []


def test_errors_are_shown_in_words(server, driver):
    open_page(driver, server)
    set_text(driver, "text", "   ")
    driver.find_element(By.ID, "run").click()
    assert "The text is empty" in driver.find_element(By.ID, "error").text
    open_page(driver, server, token="wrong")
    set_text(driver, "text", fixture_text())
    driver.find_element(By.ID, "run").click()
    wait(driver, lambda d: "401" in d.find_element(By.ID, "error").text, "the 401 message")
    assert "token" in driver.find_element(By.ID, "error").text
    assert not driver.find_elements(By.ID, "result-a"), "no result under a wrong token"


def test_too_large_and_busy_are_shown_in_words(driver):
    s = Serve("tests/fixtures/models/v5", flags=("--max-body-bytes", "2000"))
    try:
        open_page(driver, s, token="")
        set_text(driver, "text", fixture_text())
        driver.find_element(By.ID, "run").click()
        wait(driver, lambda d: "413" in d.find_element(By.ID, "error").text, "the 413 message")
        assert "Too large" in driver.find_element(By.ID, "error").text
        # A busy server's 503 (its queue full: the server's side is tests/server.rs's), as the page's
        # fetch receives it.
        busy = """
            const realFetch = window.fetch;
            window.fetch = (url, init) => String(url).includes("/v1/playground/compress")
                ? Promise.resolve(new Response(JSON.stringify({detail: "the queue is full; retry shortly"}),
                    {status: 503, headers: {"Retry-After": "7", "Content-Type": "application/json"}}))
                : realFetch(url, init);
        """
        open_page(driver, s, token="", before=busy)
        set_text(driver, "text", "a short text")
        driver.find_element(By.ID, "run").click()
        wait(driver, lambda d: "503" in d.find_element(By.ID, "error").text, "the 503 message")
        message = driver.find_element(By.ID, "error").text
        assert "retry in 7 s" in message and "the queue is full" in message, message
    finally:
        s.stop()


def test_time_to_first_result_for_3000_words(server, driver):
    open_page(driver, server)
    set_text(driver, "text", fixture_text(3000))
    run_and_wait(driver)
    t = driver.execute_script("return window.kompressTimings[window.kompressTimings.length - 1]")
    assert t["words"] == 3000
    words = len(driver.find_elements(By.CSS_SELECTOR, "#result-a .annotated span, #result-a .annotated del"))
    assert words == 3000
    print(
        f"\nfirst result for 3,000 words: fetch {t['fetch_ms']:.0f} ms, fetch + render {t['total_ms']:.0f} ms"
        f" (the method on the server: {t['server_ms']:.0f} ms)"
    )


def test_llmlingua2_runs_beside_the_pipeline_on_another_model(driver):
    # Two models in one server: the page lists both, each with its own methods.
    s = Serve(["v5=tests/fixtures/models/v5", "lingua=tests/fixtures/models/llmlingua-2-bert-base-multilingual-cased-tiny"])
    try:
        open_page(driver, s, token="")
        options = lambda sel: [o.get_attribute("value") for o in Select(driver.find_element(By.ID, sel)).options]
        assert options("model-a") == ["v5", "lingua"]
        assert options("method-a") == ["kompress", "headroom", "ctxprune"], "the default model, a ModernBERT"
        rules = lambda side: options(f"rule-{side}")
        text = fixture_text()
        set_text(driver, "text", text)
        driver.find_element(By.ID, "compare").click()
        choose(driver, "model-b", "lingua")
        assert options("method-b") == ["kompress", "headroom", "llmlingua2", "ctxprune"], "a BERT model runs LLMLingua-2"
        choose(driver, "method-b", "llmlingua2")
        assert rules("b") == ["card", "ratio", "target"], "LLMLingua-2 has no threshold rule"
        choose(driver, "rule-b", "ratio")
        set_value(driver, "value-b", 0.33)
        run_and_wait(driver, panels=("a", "b"))
        api = s.post("/v1/llmlingua2/compress", {"model": "lingua", "context": text, "rate": 0.33, "return_word_label": True})
        pipeline = s.post("/v1/compress", {"model": "v5", "text": text})
        assert driver.find_element(By.ID, "compressed-a").get_attribute("value") == pipeline["compressed"]
        assert driver.find_element(By.ID, "compressed-b").get_attribute("value") == api["compressed_prompt"]
        labels = api["fn_labeled_original_prompt"].split("\t\t|\t\t")
        dels = driver.find_elements(By.CSS_SELECTOR, "#result-b .annotated del")
        assert len(dels) == sum(1 for l in labels if l.endswith(" 0")) > 0
        assert console_errors(driver) == []
    finally:
        s.stop()
