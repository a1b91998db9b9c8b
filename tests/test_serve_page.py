"""The chat page at /, driven end to end in headless Chromium (Debian's /usr/bin/chromium via Playwright):
upload an image, ask, see the streamed answer; ask again and the conversation history goes along."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import openai
import pytest
from PIL import Image

from kanva.serve.app import create_app
from kanva.serve.engine import Engine
from kanva.serve.limits import Limits
from kanva.serve.server import ServerThread
from kanva.serve.worker import BatchWorker

CHROMIUM = Path("/usr/bin/chromium")
# The page's Content-Security-Policy forbids eval, so the test waits with locator assertions (no script in
# the page) rather than wait_for_function, and so also checks that the page works under that policy.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
MODEL = "kanva-tiny"
KEY = "page-key"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed "
                                "(scripts/test.sh installs it with apt-get when missing)")


@pytest.fixture(scope="module")
def server(tiny_model):
    worker = BatchWorker(Engine.load(tiny_model), max_batch_size=4, batch_wait_s=0.01)
    with ServerThread(create_app(worker, MODEL, Limits(), api_key=KEY)) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


def test_upload_ask_answer_and_follow_up(server, browser, tmp_path):
    from playwright.sync_api import expect

    image = tmp_path / "photo.png"
    Image.new("RGB", (48, 48), (30, 160, 60)).save(image)
    page = browser.new_page()
    streamed = []
    page.on("response", lambda r: streamed.append(r.headers.get("content-type", ""))
            if r.url.endswith("/v1/chat/completions") else None)
    page.goto(server + "/")
    page.fill("#key", KEY)
    page.dispatch_event("#key", "change")
    expect(page.locator("#model")).to_have_text("kanva-tiny")
    page.fill("#max-tokens", "24")

    page.set_input_files("#file", str(image))
    page.wait_for_selector("#pending img")
    page.fill("#prompt", "What is in the image?")
    page.click("#send")
    page.wait_for_selector("#status[data-state=done]", state="attached", timeout=60_000)
    first = page.locator(".msg.assistant .text").last.inner_text()
    assert page.locator(".msg.user img").count() == 1  # the upload shows in the conversation
    assert streamed and streamed[0].startswith("text/event-stream")

    # The same conversation through the API gives the same answer (greedy, temperature 0 on the page).
    api = openai.OpenAI(base_url=server + "/v1", api_key=KEY, max_retries=0)
    url = "data:image/png;base64," + base64.b64encode(image.read_bytes()).decode()
    turn1 = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                         {"type": "text", "text": "What is in the image?"}]}
    expected = api.chat.completions.create(model=MODEL, messages=[turn1], max_tokens=24, temperature=0)
    assert first == expected.choices[0].message.content
    assert first.strip()

    # A follow-up carries the history (image and answer) along.
    page.fill("#prompt", "What color is it?")
    page.click("#send")
    expect(page.locator(".msg.assistant")).to_have_count(2)
    expect(page.locator("#status")).to_have_attribute("data-state", "done", timeout=60_000)
    second = page.locator(".msg.assistant .text").last.inner_text()
    history = [turn1, {"role": "assistant", "content": first}, {"role": "user", "content": "What color is it?"}]
    expected2 = api.chat.completions.create(model=MODEL, messages=history, max_tokens=24, temperature=0)
    assert second == expected2.choices[0].message.content
    page.close()


def test_page_shows_server_errors(server, browser):
    from playwright.sync_api import expect

    page = browser.new_page()
    page.goto(server + "/")
    page.fill("#key", "wrong")
    page.dispatch_event("#key", "change")
    expect(page.locator("#model")).to_contain_text("API key")
    page.fill("#key", KEY)
    page.dispatch_event("#key", "change")
    expect(page.locator("#model")).to_have_text("kanva-tiny")
    page.fill("#max-tokens", "999999")  # over the server's max_tokens cap
    page.fill("#prompt", "hi")
    page.click("#send")
    page.wait_for_selector("#status[data-state=error]", timeout=30_000)
    assert "max_tokens" in page.locator(".msg.error").last.inner_text()
    page.close()
