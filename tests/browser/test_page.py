"""The page in a real browser (headless Chromium): draw a digit and see it reconstructed, click a latent cell
and see the decoded image change, move the temperature slider and see a new sample grid, use an API key,
read server errors, fit a phone. Screenshots go to artifacts/browser/.
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from .conftest import ARTIFACTS, README_SCREENSHOT

pytestmark = pytest.mark.browser

TIMEOUT_S = 20
FETCH_IMAGE_JS = """
const [id, done] = arguments;
fetch(document.getElementById(id).src).then(r => r.arrayBuffer()).then(buffer => {
  let text = "";
  for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
  done(btoa(text));
}).catch(err => done("error: " + err));
"""


# ------------------------------------------------------------------------------------------- helpers
def wait_until(driver: Any, condition: Any, message: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, TIMEOUT_S, poll_frequency=0.05).until(lambda d: condition(d))
    except Exception as exc:  # TimeoutException: say what the page shows instead
        statuses = driver.execute_script(
            "return [...document.querySelectorAll('.status')].map(e => e.id + ': ' + e.textContent)")
        screenshot(driver, "failure")
        raise AssertionError(f"timed out waiting until {message}; status lines: {statuses}") from exc


def js(driver: Any, script: str, *args: Any) -> Any:
    return driver.execute_script(script, *args)


def updates(driver: Any, img_id: str) -> int:
    return int(js(driver, "return document.getElementById(arguments[0]).dataset.updates || 0", img_id))


def loaded(driver: Any, img_id: str, after: int = 0) -> bool:
    """The image was replaced more than `after` times and its latest version has been decoded."""
    return updates(driver, img_id) > after and bool(js(
        driver, "const i = document.getElementById(arguments[0]); return i.complete && i.naturalWidth > 0", img_id))


def image_bytes(driver: Any, img_id: str) -> bytes:
    """The PNG the page shows in <img id=img_id>, exactly as the server sent it."""
    answer = driver.execute_async_script(FETCH_IMAGE_JS, img_id)
    assert not answer.startswith("error"), answer
    return base64.b64decode(answer)


def image_array(driver: Any, img_id: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(image_bytes(driver, img_id))).convert("L"), dtype=np.float32) / 255


def screenshot(driver: Any, name: str) -> Path:
    """A full-page PNG (beyond the viewport) into artifacts/browser/<name>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def open_page(driver: Any, server: dict[str, Any]) -> None:
    """Loads / in a fresh state and waits for the model panel, the first sample grid and the first decode."""
    driver.get(server["url"] + "/")
    js(driver, "sessionStorage.clear()")
    driver.refresh()
    wait_until(driver, lambda d: "gvae:" in d.find_element("id", "model-tag").text, "the model tag shows")
    wait_until(driver, lambda d: loaded(d, "samples-img") and loaded(d, "decoded-img"), "samples and decode show")


def draw_stroke(driver: Any) -> None:
    """A '7'-like stroke on the drawing pad with the mouse (pointer events)."""
    from selenium.webdriver.common.action_chains import ActionChains

    pad = driver.find_element("id", "pad")
    w = pad.size["width"]
    chain = ActionChains(driver).move_to_element_with_offset(pad, int(-0.25 * w), int(-0.3 * w)).click_and_hold()
    for dx, dy in [(0.12, 0), (0.12, 0), (0.12, 0.01), (-0.05, 0.15), (-0.06, 0.15), (-0.06, 0.15), (-0.04, 0.12)]:
        chain = chain.move_by_offset(int(dx * w), int(dy * w))
    chain.release().perform()


def no_error_shown(driver: Any) -> list[str]:
    return js(driver, "return [...document.querySelectorAll('.status.error')].map(e => e.textContent)")


# ------------------------------------------------------------------------------------------- tests
def test_page_shows_the_model_its_curves_and_samples(driver: Any, server: dict[str, Any]) -> None:
    open_page(driver, server)
    wait_until(driver, lambda d: d.find_element("id", "model-facts").text != "", "the model facts show")
    assert "gvae:" in driver.find_element("id", "model-facts").text
    assert driver.find_elements("css selector", "#model-metrics tr")
    wait_until(driver, lambda d: loaded(d, "loss-curve"), "the loss curve shows")
    assert driver.find_element("id", "loss-curve").is_displayed()
    assert js(driver, "return document.querySelectorAll('#epoch-table tbody tr').length") > 0
    assert js(driver, "return document.querySelectorAll('#latent-grid .cell').length") == 300
    assert js(driver, "return document.querySelectorAll('#latent-grid .cell.selected').length") == 30
    assert no_error_shown(driver) == []
    screenshot(driver, "desktop-loaded")


def test_a_drawn_stroke_is_reconstructed(driver: Any, server: dict[str, Any]) -> None:
    open_page(driver, server)
    assert not js(driver, "return document.getElementById('recon-img').hasAttribute('src')")
    draw_stroke(driver)
    wait_until(driver, lambda d: loaded(d, "recon-img"), "the reconstruction shows")
    grid = image_array(driver, "recon-img")
    assert grid.shape == (56, 28)  # the preprocessed input above its reconstruction
    assert grid[:28].max() > 0.9 and grid[:28].mean() > 0.03  # the stroke reached the model
    assert js(driver, "return document.getElementById('recon-img').getBoundingClientRect().width") > 50
    wait_until(driver, lambda d: js(d, "return document.getElementById('heatmap').dataset.drawn === '1'"),
               "the posterior heat map is drawn")
    assert "reconstructed by gvae:" in driver.find_element("id", "draw-status").text
    assert driver.find_element("id", "codes-from-drawing").is_enabled()
    assert no_error_shown(driver) == []
    path = screenshot(driver, "desktop-drawn")
    if os.environ.get("UPDATE_README_SCREENSHOT"):  # 256 colours keep it small enough to commit
        README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        Image.open(path).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE) \
            .save(README_SCREENSHOT, optimize=True)


def test_clicking_a_latent_cell_changes_the_decoded_image(driver: Any, server: dict[str, Any]) -> None:
    open_page(driver, server)
    before, count = image_bytes(driver, "decoded-img"), updates(driver, "decoded-img")
    current = int(js(driver, "return document.querySelector('#latent-grid .cell.selected').dataset.class"))
    target = (current + 5) % 10
    cell = driver.find_element("css selector", f'#latent-grid .cell[data-variable="0"][data-class="{target}"]')
    cell.click()
    assert "selected" in cell.get_attribute("class")
    wait_until(driver, lambda d: loaded(d, "decoded-img", after=count), "the codes are decoded again")
    after = image_bytes(driver, "decoded-img")
    assert after != before
    assert Image.open(io.BytesIO(after)).size == (28, 28)
    assert f"codes: [{target}," in driver.find_element("id", "code-text").text
    screenshot(driver, "desktop-latent-click")


def test_the_temperature_slider_draws_a_new_grid_and_a_seed_repeats_it(driver: Any,
                                                                         server: dict[str, Any]) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    open_page(driver, server)
    img = driver.find_element("id", "samples-img")
    assert img.get_attribute("data-temperature") == "1" and img.get_attribute("data-seed") == "0"
    first, count = image_bytes(driver, "samples-img"), updates(driver, "samples-img")
    slider = driver.find_element("id", "temperature")
    ActionChains(driver).click_and_hold(slider).move_by_offset(-slider.size["width"] // 3, 0).release().perform()
    wait_until(driver, lambda d: loaded(d, "samples-img", after=count)
               and float(img.get_attribute("data-temperature")) < 0.5, "a grid at a lower temperature shows")
    tau = img.get_attribute("data-temperature")
    assert driver.find_element("id", "temperature-value").text == f"{float(tau):.2f}"
    cold = image_bytes(driver, "samples-img")
    assert cold != first
    assert Image.open(io.BytesIO(cold)).size == (8 * 28 + 9 * 2,) * 2  # 64 digits, 8 per row, padding 2

    count = updates(driver, "samples-img")
    driver.find_element("id", "resample").click()
    wait_until(driver, lambda d: loaded(d, "samples-img", after=count), "a resampled grid shows")
    assert img.get_attribute("data-seed") != "0"
    assert image_bytes(driver, "samples-img") != cold

    count = updates(driver, "samples-img")
    seed = driver.find_element("id", "seed")
    seed.send_keys(Keys.CONTROL, "a")
    seed.send_keys("0", Keys.TAB)
    wait_until(driver, lambda d: loaded(d, "samples-img", after=count) and img.get_attribute("data-seed") == "0",
               "the grid of seed 0 shows again")
    assert img.get_attribute("data-temperature") == tau
    assert image_bytes(driver, "samples-img") == cold  # same seed and temperature: the same grid
    screenshot(driver, "desktop-samples")


def test_an_api_key_is_asked_for_and_then_sent(driver: Any, server: dict[str, Any]) -> None:
    guard = server["guard"]
    guard.key = "s3cret"
    try:
        driver.get(server["url"] + "/")
        js(driver, "sessionStorage.clear()")
        driver.refresh()
        status = driver.find_element("id", "global-status")
        wait_until(driver, lambda d: "needs an API key: enter it above" in status.text, "the page asks for a key")
        assert "missing or wrong API key" in status.text  # the server's detail
        screenshot(driver, "desktop-needs-key")
        driver.find_element("id", "api-key").send_keys("s3cret")
        driver.find_element("css selector", "#key-form button[type=submit]").click()
        wait_until(driver, lambda d: "gvae:" in d.find_element("id", "model-tag").text, "the model tag shows")
        wait_until(driver, lambda d: loaded(d, "samples-img"), "samples show")
        assert status.text == ""
        assert js(driver, "return sessionStorage.getItem('gvae-api-key')") == "s3cret"
        assert js(driver, "return localStorage.length") == 0
    finally:
        guard.key = None
        js(driver, "sessionStorage.clear()")


def test_a_server_error_is_shown_as_its_detail(driver: Any, server: dict[str, Any], tmp_path: Path) -> None:
    open_page(driver, server)
    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("this is not a digit\n")
    driver.find_element("id", "upload").send_keys(str(not_an_image))
    status = driver.find_element("id", "draw-status")
    wait_until(driver, lambda d: "415" in status.text, "the upload's error shows")
    assert "notes.txt" in status.text and "error" in status.get_attribute("class")


def test_the_page_fits_a_phone_screen(driver: Any, server: dict[str, Any]) -> None:
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True})
    try:
        open_page(driver, server)
        draw_stroke(driver)
        wait_until(driver, lambda d: loaded(d, "recon-img"), "the reconstruction shows")
        assert js(driver, "return document.documentElement.scrollWidth") <= 390  # no sideways scrolling
        columns = js(driver, "return getComputedStyle(document.getElementById('latent-grid'))"
                             ".gridTemplateColumns.split(' ').length")
        assert columns == 10  # one row per variable on a narrow screen
        pad_width = js(driver, "return document.getElementById('pad').getBoundingClientRect().width")
        assert 300 <= pad_width <= 390
        screenshot(driver, "phone")
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
