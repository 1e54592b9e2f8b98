"""The web panel in a real browser: headless Chromium driven by selenium, against a served emulator
(and once through alpaca-proxy in front of it).

One browser and one emulator for the module; each test opens the page afresh. The page polls
every 200 ms here (``?poll_ms=200``), so a change shows within a few polls; every wait has a
deadline. Skipped, saying why, only where Chromium or its driver is not installed (Debian:
``apt-get install chromium chromium-driver``; ci/run installs them).
"""

from __future__ import annotations

import shutil
import tempfile

import pytest
import requests
from alpaca.camera import Camera
from alpaca.safetymonitor import SafetyMonitor

from emulator import Emulator
from proxy import Proxy

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip("no browser: Chromium and chromedriver are not installed (apt-get install chromium chromium-driver)",
                allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

TIMEOUT = 10
WAIT = 10
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1400,1000")


@pytest.fixture(scope="module")
def browser():
    with tempfile.TemporaryDirectory(prefix="panel-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        driver.set_page_load_timeout(TIMEOUT)
        driver.set_script_timeout(TIMEOUT)
        try:
            yield driver
        finally:
            driver.quit()


@pytest.fixture(scope="module")
def emu():
    config = {"devices": [{"type": "safetymonitor", "connected": True}, {"type": "camera", "width": 320, "height": 240},
                          {"type": "observingconditions"}, {"type": "dome", "number": 2}]}
    with Emulator(config, time_scale=1000) as e:
        yield e


@pytest.fixture
def page(browser, emu):
    """The panel, loaded and updated once; the emulator's rules and state are reset afterwards."""
    browser.get(emu.url + "/?poll_ms=200")
    until(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-updates"), "the first update")
    yield browser
    emu.reset()


def until(driver, condition, what: str):
    return WebDriverWait(driver, WAIT, poll_frequency=0.05).until(condition, f"the panel never showed {what}")


def cell(driver, device: str, key: str):
    return driver.find_element(By.CSS_SELECTOR, f".device[data-device='{device}'] tr[data-key='{key}'] td.value")


def rule_row(driver, rule_id: str):
    rows = driver.find_elements(By.CSS_SELECTOR, f"#faults tr[data-rule='{rule_id}']")
    return rows[0] if rows else None


def test_every_device_is_shown_and_the_page_goes_live(page, emu):
    shown = {e.get_attribute("data-device") for e in page.find_elements(By.CSS_SELECTOR, "#devices .device")}
    assert shown == {f"{d.device_type}/{d.number}" for d in emu.devices()}
    assert "dome 2" in page.find_element(By.CSS_SELECTOR, ".device[data-device='dome/2'] h3").text
    assert page.find_element(By.ID, "status").text.startswith("live")
    assert not [e for e in page.get_log("browser") if e["level"] == "SEVERE"]


def test_add_a_rule_see_it_fire_disable_enable_and_remove_it(page, emu):
    mon = SafetyMonitor(emu.address, 0)
    issafe = emu.url + "/api/v1/safetymonitor/0/issafe"
    form = page.find_element(By.ID, "rule-form")
    Select(form.find_element(By.NAME, "match.device_type")).select_by_visible_text("safetymonitor")
    form.find_element(By.NAME, "match.member").send_keys("issafe")
    Select(form.find_element(By.NAME, "action.kind")).select_by_visible_text("http_status")
    status = form.find_element(By.NAME, "action.status")  # built from the rule model's schema
    status.send_keys("503")
    form.find_element(By.NAME, "name").send_keys("weather station down")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    until(page, lambda d: "added rule" in d.find_element(By.ID, "form-message").text, "the rule added")
    [rule] = emu.faults.list()
    assert rule.spec.name == "weather station down" and rule.spec.action.status == 503
    row = until(page, lambda d: rule_row(d, rule.id), "the new rule in the list")
    assert "http_status" in row.text and "status=503" in row.text

    assert requests.get(issafe, timeout=TIMEOUT).status_code == 503
    until(page, lambda d: rule_row(d, rule.id).find_element(By.CSS_SELECTOR, ".fired").text == "1", "fired = 1")

    rule_row(page, rule.id).find_element(By.CSS_SELECTOR, "button.toggle").click()
    until(page, lambda d: "disabled" in rule_row(d, rule.id).get_attribute("class"), "the rule disabled")
    assert emu.faults.get(rule.id).spec.enabled is False
    assert mon.IsSafe is True  # the device answers again
    rule_row(page, rule.id).find_element(By.CSS_SELECTOR, "button.toggle").click()
    until(page, lambda d: "disabled" not in rule_row(d, rule.id).get_attribute("class"), "the rule enabled")
    assert requests.get(issafe, timeout=TIMEOUT).status_code == 503
    until(page, lambda d: rule_row(d, rule.id).find_element(By.CSS_SELECTOR, ".fired").text == "2", "fired = 2")

    rule_row(page, rule.id).find_element(By.CSS_SELECTOR, "button.remove").click()
    until(page, lambda d: rule_row(d, rule.id) is None, "the rule gone")
    assert len(emu.faults) == 0 and mon.IsSafe is True
    assert page.find_element(By.CSS_SELECTOR, "#faults .empty").is_displayed()


def test_a_rule_with_several_actions_is_one_row_that_lists_them(page, emu):
    rule = emu.faults.add({"name": "bad link", "match": {"device_type": "management"}, "actions": [
        {"kind": "latency", "ms": 500}, {"kind": "truncate", "fraction": 0.5}, {"kind": "bad_json"}]})
    row = until(page, lambda d: rule_row(d, rule.id), "the multi-action rule in the list")
    assert row.find_element(By.CSS_SELECTOR, ".action").text == "latency ms=500 + truncate + bad_json"
    assert [b.text for b in row.find_elements(By.CSS_SELECTOR, ".action b")] == ["latency", "truncate", "bad_json"]
    emu.faults.update(rule.id, {"actions": {"0": {"ms": 20}}})
    until(page, lambda d: rule_row(d, rule.id).find_element(By.CSS_SELECTOR, ".action").text
          == "latency ms=20 + truncate + bad_json", "the patched action")
    assert not [e for e in page.get_log("browser") if e["level"] == "SEVERE"]


def test_a_bad_value_is_shown_at_its_field_and_adds_nothing(page, emu):
    form = page.find_element(By.ID, "rule-form")
    form.find_element(By.NAME, "match.device_number").send_keys("two")
    form.find_element(By.NAME, "trigger.probability").send_keys("1.5")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    number_error = form.find_element(By.CSS_SELECTOR, "[data-error-for='match.device_number']")
    until(page, lambda d: number_error.text, "the device_number error")
    assert "integer" in number_error.text
    assert "less than or equal to 1" in form.find_element(By.CSS_SELECTOR, "[data-error-for='trigger.probability']").text
    assert "invalid" in form.find_element(By.NAME, "match.device_number").get_attribute("class")
    assert form.find_element(By.CSS_SELECTOR, "[data-error-for='match.member']").text == ""
    assert len(emu.faults) == 0


def test_state_changes_show_without_reload_and_controls_set_state(page, emu):
    page.execute_script("window.notReloaded = true")
    requests.put(emu.url + "/emulator/v1/devices/safetymonitor/0/state", json={"IsSafe": False}, timeout=TIMEOUT)
    until(page, lambda d: cell(d, "safetymonitor/0", "IsSafe").text == "false", "IsSafe false")
    # the page's own control: tick IsSafe back on
    page.find_element(By.CSS_SELECTOR, ".device[data-device='safetymonitor/0'] input[data-set='IsSafe']").click()
    until(page, lambda d: cell(d, "safetymonitor/0", "IsSafe").text == "true", "IsSafe true")
    assert SafetyMonitor(emu.address, 0).IsSafe is True
    if "IsSafeOverride" in emu.get_state("safetymonitor"):  # IsSafe overrides the weather until released
        row = page.find_element(By.CSS_SELECTOR, ".device[data-device='safetymonitor/0'] tr[data-key='IsSafe']")
        until(page, lambda d: "pinned" in row.get_attribute("class"), "IsSafe overridden")
        row.find_element(By.CSS_SELECTOR, "button.unpin").click()
        until(page, lambda d: "pinned" not in row.get_attribute("class"), "IsSafe released")
        assert emu.get_state("safetymonitor")["IsSafeOverride"] is None
    # a weather pin, and a bad one named by the device
    card = page.find_element(By.CSS_SELECTOR, ".device[data-device='observingconditions/0']")
    pin = card.find_element(By.CSS_SELECTOR, "form.pin")

    def pin_to(name: str, value: str) -> None:
        Select(pin.find_element(By.NAME, "pin-name")).select_by_visible_text(name)
        field = pin.find_element(By.NAME, "pin-value")
        field.clear()
        field.send_keys(value)
        pin.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    pin_to("CloudCover", "87.5")
    until(page, lambda d: cell(d, "observingconditions/0", "CloudCover").text == "87.5", "CloudCover pinned")
    row = card.find_element(By.CSS_SELECTOR, "tr[data-key='CloudCover']")
    assert "pinned" in row.get_attribute("class") and emu.get_state("observingconditions")["Pinned"] == {"CloudCover": 87.5}
    pin_to("Humidity", "wet")
    until(page, lambda d: "Humidity" in card.find_element(By.CSS_SELECTOR, ".device-error").text, "the state error")
    row.find_element(By.CSS_SELECTOR, "button.unpin").click()
    until(page, lambda d: "pinned" not in row.get_attribute("class"), "CloudCover unpinned")
    assert emu.get_state("observingconditions")["Pinned"] == {}
    assert page.execute_script("return window.notReloaded") is True


def test_traffic_tail_with_a_filter(page, emu):
    emu.traffic.clear()
    mon = SafetyMonitor(emu.address, 0)
    assert mon.IsSafe is True and mon.Name
    until(page, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#traffic tbody tr")) == 2, "both requests")
    filters = page.find_element(By.ID, "traffic-filters")
    filters.find_element(By.NAME, "member").send_keys("issafe")
    filters.find_element(By.NAME, "member").submit()

    def paths(driver):
        # read in one go: the page replaces the rows on every poll
        found = driver.execute_script(
            "return [...document.querySelectorAll('#traffic tbody td.path')].map(td => td.textContent)")
        return found if found and all(p.endswith("/issafe") for p in found) else None

    assert until(page, paths, "only IsSafe requests") == ["/api/v1/safetymonitor/0/issafe"]


def test_the_camera_preview_appears_after_an_exposure(page, emu):
    note = page.find_element(By.CSS_SELECTOR, ".device[data-device='camera/0'] .preview-note")
    assert "No frame yet" in note.text
    cam = Camera(emu.address, 0)
    cam.Connected = True
    cam.StartExposure(1.0, True)
    img = page.find_element(By.CSS_SELECTOR, "img[data-camera='0']")
    until(page, lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img), "the frame")
    assert page.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", img) == [320, 240]
    assert img.is_displayed() and "exposure 1" in note.text
    cam.Connected = False


def test_the_proxys_panel_adds_a_rule_that_fails_a_proxied_request_and_removes_it(browser, emu):
    """alpaca-proxy serves the same panel: the upstream's devices, the proxy's own rules."""
    with Proxy(emu.address) as proxy:
        browser.get_log("browser")  # what earlier tests left (their 400s on purpose)
        browser.get(proxy.url + "/?poll_ms=200")
        until(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-updates"), "the first update")
        shown = {e.get_attribute("data-device") for e in browser.find_elements(By.CSS_SELECTOR, "#devices .device")}
        assert shown == {f"{d.device_type}/{d.number}" for d in emu.devices()}
        assert "upstream's" in browser.find_element(By.CSS_SELECTOR, ".devices-note").text
        until(browser, lambda d: cell(d, "safetymonitor/0", "IsSafe").text == "true", "IsSafe read from the upstream")
        assert not browser.find_elements(By.CSS_SELECTOR, "input[data-set], img[data-camera]")  # the state is the upstream's

        issafe = proxy.url + "/api/v1/safetymonitor/0/issafe"
        form = browser.find_element(By.ID, "rule-form")
        Select(form.find_element(By.NAME, "match.device_type")).select_by_visible_text("safetymonitor")
        form.find_element(By.NAME, "match.member").send_keys("issafe")
        Select(form.find_element(By.NAME, "action.kind")).select_by_visible_text("http_status")
        form.find_element(By.NAME, "action.status").send_keys("503")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        until(browser, lambda d: "added rule" in d.find_element(By.ID, "form-message").text, "the rule added")
        [rule] = proxy.faults.list()
        assert len(emu.faults) == 0  # the proxy's rule, not the upstream's
        assert requests.get(issafe, timeout=TIMEOUT).status_code == 503
        until(browser, lambda d: rule_row(d, rule.id).find_element(By.CSS_SELECTOR, ".fired").text == "1", "fired = 1")
        # the panel reads the device past the rule: IsSafe stays shown
        assert cell(browser, "safetymonitor/0", "IsSafe").text == "true"

        rule_row(browser, rule.id).find_element(By.CSS_SELECTOR, "button.remove").click()
        until(browser, lambda d: rule_row(d, rule.id) is None, "the rule gone")
        assert len(proxy.faults) == 0
        assert requests.get(issafe, timeout=TIMEOUT).json()["Value"] is True
        assert SafetyMonitor(proxy.address, 0).IsSafe is True
        assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
