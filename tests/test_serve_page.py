"""The chat page at /, driven end to end in headless Chromium (Debian's /usr/bin/chromium via Playwright):
upload an image, ask, see the streamed answer; ask again and the conversation history goes along."""

from __future__ import annotations

import base64
import io
import time
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
    page.click("header summary")  # the settings (key, max tokens, temperature) fold away
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
    page.click("header summary")
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


class SlowEngine(Engine):
    """A real engine whose every decoding step takes a little longer, so Stop can land mid-answer."""

    def generate(self, batch, **kwargs):
        streamer = kwargs.get("streamer")
        if streamer is not None:
            put = streamer.put

            def slow_put(value):
                time.sleep(0.05)
                return put(value)

            streamer.put = slow_put
        return super().generate(batch, **kwargs)


@pytest.fixture(scope="module")
def ov_server(tiny_ov_model):
    from kanva.infer import Generator

    worker = BatchWorker(SlowEngine(Generator.load(tiny_ov_model)), max_batch_size=4, batch_wait_s=0.01)
    with ServerThread(create_app(worker, "runs/tiny-ov/instruct/final", Limits())) as url:
        yield url


def test_examples_paste_drop_video_stop_and_regenerate(ov_server, browser, tmp_path):
    """The page a LLaVA demo user expects: world-scene examples, media by picker / paste / drag-and-drop
    with previews, a video, Stop mid-answer, Regenerate; the model path shows as a short name."""
    from conftest import write_mp4
    from playwright.sync_api import expect  # (the page's CSP forbids string-evaluated wait_for_function)

    write_mp4(tmp_path / "clip.mp4", [Image.new("RGB", (32, 32), (10 * i, 80, 200 - 10 * i)) for i in range(12)])
    png = io.BytesIO()
    Image.new("RGB", (64, 40), (200, 60, 30)).save(png, "PNG")
    b64 = base64.b64encode(png.getvalue()).decode()
    page = browser.new_page()
    page.goto(ov_server + "/")
    expect(page.locator("#model")).to_have_text("tiny-ov · instruct")
    assert page.get_attribute("#model", "title") == "runs/tiny-ov/instruct/final"
    page.wait_for_selector(".example img")
    assert page.locator(".example").count() == 3

    # picker (video), paste (image), drop (image): three previews, one removable
    page.set_input_files("#file", str(tmp_path / "clip.mp4"))
    page.wait_for_selector("#pending .video video")
    make_file = f"""(name) => {{ const bytes = Uint8Array.from(atob("{b64}"), (c) => c.charCodeAt(0));
        const dt = new DataTransfer(); dt.items.add(new File([bytes], name, {{type: "image/png"}})); return dt; }}"""
    page.evaluate(f"""() => {{ const dt = ({make_file})("pasted.png");
        document.dispatchEvent(new ClipboardEvent("paste", {{clipboardData: dt, bubbles: true}})); }}""")
    page.evaluate(f"""() => {{ const dt = ({make_file})("dropped.png");
        document.dispatchEvent(new DragEvent("drop", {{dataTransfer: dt, bubbles: true, cancelable: true}})); }}""")
    expect(page.locator("#pending .pending-item")).to_have_count(3)
    page.locator("#pending .image .remove").last.click()
    expect(page.locator("#pending .pending-item")).to_have_count(2)

    # send image + video with a long answer; Stop lands mid-answer and keeps what was shown
    page.click("header summary")
    page.fill("#max-tokens", "400")
    page.fill("#prompt", "Describe the picture and the video.")
    page.click("#send")
    expect(page.locator(".msg.assistant .text")).not_to_have_text("", timeout=60_000)
    page.click("#stop")
    page.wait_for_selector("#status[data-state=stopped]", state="attached", timeout=30_000)
    assert page.locator(".msg.user .media img").count() == 1 and page.locator(".msg.user .media video").count() == 1
    assert page.locator(".msg.assistant .note").inner_text() == "(stopped)"

    # Regenerate replaces the last answer (greedy: a short one twice is the same text)
    page.fill("#max-tokens", "6")
    page.click("#regenerate")
    page.wait_for_selector("#status[data-state=done]", state="attached", timeout=60_000)
    first = page.locator(".msg.assistant .text").last.inner_text()
    with page.expect_response(lambda r: r.url.endswith("/v1/chat/completions")):  # it asks the server again
        page.click("#regenerate")
    page.wait_for_selector("#status[data-state=done]", state="attached", timeout=60_000)
    assert page.locator(".msg.assistant").count() == 1 and page.locator(".msg.assistant .text").inner_text() == first

    # an example starts a conversation with its world image
    page.click("#new-chat")
    page.locator(".example").first.click()
    page.wait_for_selector("#status[data-state=done]", state="attached", timeout=60_000)
    assert page.locator(".msg.user .media img").count() == 1
    page.screenshot(path=str(tmp_path / "page.png"))
    page.close()
