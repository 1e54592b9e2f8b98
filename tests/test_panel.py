"""The web panel over real HTTP, without a browser: what / and the setup URLs answer, the control
API's additions it polls (device list, camera preview), and its access rule (token cookie).
The browser's side is tests/test_panel_browser.py."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import falcon.testing
import numpy as np
import pytest
import requests
from alpaca.camera import Camera

from emulator import Emulator
from emulator.control import TOKEN_COOKIE
from emulator.panel import STATIC_FILES
from emulator.sim.devices import DEVICE_CLASSES
from support import wait_until
from test_png import decode_png

TIMEOUT = 10
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def emu():
    with Emulator(time_scale=1000) as e:
        yield e


@pytest.fixture(autouse=True)
def _clean(emu):
    yield
    emu.reset()


def test_root_names_every_device_and_every_rule(emu):
    emu.faults.add({"name": "camera outage", "match": {"device_type": "camera"}, "action": {"kind": "http_status", "status": 503}})
    emu.faults.add({"match": {"device_type": "dome", "member": "slewing"}, "action": "bad_json"})
    for path in ("/", "/emulator/panel"):
        resp = requests.get(emu.url + path, timeout=TIMEOUT)
        assert resp.status_code == 200, path
        assert resp.headers["Content-Type"].startswith("text/html")
        page = resp.text
        for dev in emu.devices():
            assert f"data-device='{dev.device_type}/{dev.number}'" in page
            assert dev.name in page
        assert set(DEVICE_CLASSES) == {d.device_type for d in emu.devices()}
        rows = re.findall(r"<tr data-rule='(r\d+)'", page)
        assert rows == [r.id for r in emu.faults.list()]
        assert "camera outage" in page and "http_status" in page and "bad_json" in page
        assert "/emulator/panel/static/panel.js" in page


def test_the_page_is_the_same_answer_the_model_gives(emu):
    """The embedded rule schema is the rule model's: the form is validated by the same model."""
    from emulator.faults.rules import ACTION_KINDS, RuleSpec
    import json

    page = requests.get(emu.url + "/", timeout=TIMEOUT).text
    config = json.loads(re.search(r'<script type="application/json" id="panel-config">(.*?)</script>', page, re.S).group(1))
    assert config["schema"] == RuleSpec.model_json_schema()
    assert config["kinds"] == list(ACTION_KINDS)
    assert config["api"] == "/emulator/v1" and config["focus"] is None


def test_a_rule_with_several_actions_shows_them_all_in_its_row(emu):
    """Server-rendered: each action with its changed parameters, in the order written; the
    control API lists the same rule with its actions (what panel.js redraws the row from)."""
    rule = emu.faults.add({"name": "bad link", "match": {"device_type": "management"}, "actions": [
        {"kind": "latency", "ms": 500}, {"kind": "truncate", "fraction": 0.5}, {"kind": "bad_json"}]})
    single = emu.faults.add({"match": {"member": "issafe"}, "action": {"kind": "http_status", "status": 503}})
    page = requests.get(emu.url + "/", timeout=TIMEOUT).text
    row = re.search(rf"<tr data-rule='{rule.id}'.*?</tr>", page, re.S).group(0)
    cell = re.search(r"<td class='action'>(.*?)</td>", row, re.S).group(1)
    assert cell == "<b>latency</b> ms=500 + <b>truncate</b> + <b>bad_json</b>"
    assert "<td class='rule-name'>bad link</td>" in row
    row = re.search(rf"<tr data-rule='{single.id}'.*?</tr>", page, re.S).group(0)
    assert re.search(r"<td class='action'>(.*?)</td>", row, re.S).group(1) == "<b>http_status</b> status=503"
    listed = requests.get(emu.url + "/emulator/v1/faults", timeout=TIMEOUT).json()
    assert [a["kind"] for a in listed[0]["actions"]] == ["latency", "truncate", "bad_json"] and "action" not in listed[0]
    assert listed[1]["action"]["kind"] == "http_status" and "actions" not in listed[1]
    script = requests.get(emu.url + "/emulator/panel/static/panel.js", timeout=TIMEOUT).text
    assert "rule.actions || [rule.action]" in script  # the live row is redrawn from either form


def test_device_setup_url_is_the_panel_about_that_device(emu):
    emu.faults.add({"name": "focuser rule", "match": {"device_type": "focuser"}, "action": "bad_json"})
    emu.faults.add({"name": "anything rule", "match": {"member": "position"}, "action": "bad_json"})
    emu.faults.add({"name": "dome rule", "match": {"device_type": "dome"}, "action": "bad_json"})
    resp = requests.get(emu.url + "/setup/v1/focuser/0/setup", timeout=TIMEOUT)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/html")
    page = resp.text
    assert "data-device='focuser/0'" in page and "data-device='dome/0'" not in page
    assert "focuser rule" in page and "anything rule" in page and "dome rule" not in page
    assert '"focus": ["focuser", 0]' in page
    # /setup stays the plain table of every device; an unknown device stays 403 HTML
    plain = requests.get(emu.url + "/setup", timeout=TIMEOUT)
    assert plain.status_code == 200 and "panel.js" not in plain.text
    assert requests.get(emu.url + "/setup/v1/focuser/7/setup", timeout=TIMEOUT).status_code == 403


def test_static_files_are_served_and_shipped(emu):
    for name, kind in STATIC_FILES.items():
        resp = requests.get(f"{emu.url}/emulator/panel/static/{name}", timeout=TIMEOUT)
        assert resp.status_code == 200 and resp.headers["Content-Type"] == kind and len(resp.content) > 500
    missing = requests.get(emu.url + "/emulator/panel/static/../control.py", timeout=TIMEOUT)
    assert missing.status_code in (400, 404)
    nope = requests.get(emu.url + "/emulator/panel/static/nope.js", timeout=TIMEOUT)
    assert nope.status_code == 404 and "panel.js" in nope.json()["error"]
    # every file the panel serves is in the package data, so a plain `pip install .` ships it
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["emulator"]
    static = REPO / "emulator" / "static"
    shipped = {p.name for pattern in patterns for p in (REPO / "emulator").glob(pattern) if p.parent == static}
    assert set(STATIC_FILES) <= shipped
    assert {p.name for p in static.iterdir()} <= shipped


def test_devices_listing_has_state_and_what_is_settable(emu):
    emu.set_state("safetymonitor", IsSafe=False)
    listing = requests.get(emu.url + "/emulator/v1/devices", timeout=TIMEOUT).json()
    assert [(d["device_type"], d["device_number"]) for d in listing] == sorted((d.device_type, d.number) for d in emu.devices())
    mon = next(d for d in listing if d["device_type"] == "safetymonitor")
    assert mon["state"]["IsSafe"] is False and mon["settable"]["IsSafe"] in ("bool", "object")
    weather = next(d for d in listing if d["device_type"] == "observingconditions")
    assert weather["settable"]["CloudCover"] == "object" and weather["settable"]["Pinned"] == "dict"


def test_camera_preview_is_404_with_a_reason_then_the_frame(emu):
    url = emu.url + "/emulator/v1/camera/0/preview.png"
    before = requests.get(url, timeout=TIMEOUT)
    assert before.status_code == 404 and "no frame yet" in before.json()["error"]
    assert requests.get(emu.url + "/emulator/v1/camera/3/preview.png", timeout=TIMEOUT).status_code == 404
    cam = Camera(emu.address, 0)
    cam.Connected = True
    cam.StartExposure(1.0, True)
    assert wait_until(lambda: cam.ImageReady, 10)
    resp = requests.get(url, timeout=TIMEOUT)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "image/png"
    assert resp.headers["Cache-Control"] == "no-store"
    header, pixels = decode_png(resp.content)
    config = emu.device("camera").config
    assert (header["width"], header["height"]) == (config.width, config.height)
    # the frame ImageArray serves, stretched by a rising curve: a brighter pixel is never darker
    frame = np.asarray(cam.ImageArray).T
    order = np.argsort(frame.ravel(), kind="stable")
    assert (np.diff(pixels.ravel()[order].astype(int)) >= 0).all()
    assert pixels.min() < 64 and pixels.max() > 192
    cam.Connected = False


def test_a_large_frame_is_binned_to_fit():
    with Emulator({"devices": [{"type": "camera", "width": 3000, "height": 2000}]}, time_scale=1000) as emu:
        cam = Camera(emu.address, 0)
        cam.Connected = True
        cam.StartExposure(0.5, True)
        assert wait_until(lambda: cam.ImageReady, 10)
        header, _ = decode_png(requests.get(emu.url + "/emulator/v1/camera/0/preview.png", timeout=TIMEOUT).content)
        assert (header["width"], header["height"]) == (1000, 666)


# -- access: the control API's rule ------------------------------------------------------------------


def test_token_form_cookie_and_redirect():
    with Emulator({"devices": [{"type": "safetymonitor"}]}, control_token="s3cret") as emu:
        bare = requests.get(emu.url + "/", timeout=TIMEOUT)
        assert bare.status_code == 401 and "name='token'" in bare.text and "Rehearsal SafetyMonitor" not in bare.text
        wrong = requests.get(emu.url + "/?token=nope", timeout=TIMEOUT, allow_redirects=False)
        assert wrong.status_code == 401 and "wrong" in wrong.text and TOKEN_COOKIE not in wrong.cookies
        session = requests.Session()
        right = session.get(emu.url + "/?token=s3cret", timeout=TIMEOUT, allow_redirects=False)
        assert right.status_code == 303 and right.headers["Location"] == "/"
        cookie = right.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        page = session.get(emu.url + "/", timeout=TIMEOUT)
        assert page.status_code == 200 and "Rehearsal SafetyMonitor" in page.text
        # the cookie is what the page's script sends to the control API
        assert session.get(emu.url + "/emulator/v1/devices", timeout=TIMEOUT).status_code == 200
        assert requests.get(emu.url + "/emulator/v1/devices", timeout=TIMEOUT).status_code == 401
        assert requests.get(emu.url + "/emulator/v1/devices", cookies={TOKEN_COOKIE: "nope"}, timeout=TIMEOUT).status_code == 401
        # a setup URL without access is the plain setup page, for Alpaca clients that check it
        plain = requests.get(emu.url + "/setup/v1/safetymonitor/0/setup", timeout=TIMEOUT)
        assert plain.status_code == 200 and "panel.js" not in plain.text and "IsSafe" in plain.text
        assert "panel.js" in session.get(emu.url + "/setup/v1/safetymonitor/0/setup", timeout=TIMEOUT).text


def test_no_token_beyond_loopback_is_403():
    with Emulator({"devices": [{"type": "safetymonitor"}]}, host="0.0.0.0") as emu:
        client = falcon.testing.TestClient(emu.app)
        far = client.simulate_get("/", remote_addr="10.1.2.3")
        assert far.status_code == 403 and "--control-token" in far.text and "name='token'" not in far.text
        assert client.simulate_get("/emulator/v1/camera/0/preview.png", remote_addr="10.1.2.3").status_code == 403
        assert client.simulate_get("/", remote_addr="127.0.0.1").status_code == 200


def test_alpaca_credentials_do_not_lock_the_operator_out_of_the_panel():
    with Emulator({"devices": [{"type": "safetymonitor"}]}, basic_auth=("ann", "pw")) as emu:
        assert requests.get(emu.url + "/", timeout=TIMEOUT).status_code == 200
        assert requests.get(emu.url + "/setup", timeout=TIMEOUT).status_code == 401


def test_a_rule_on_everything_leaves_the_panel_home_reachable(emu):
    """A rule that matches every request breaks /, but /emulator/panel and the API it polls stay."""
    emu.faults.add({"action": {"kind": "http_status", "status": 503}})
    assert requests.get(emu.url + "/", timeout=TIMEOUT).status_code == 503
    assert requests.get(emu.url + "/emulator/panel", timeout=TIMEOUT).status_code == 200
    assert requests.get(emu.url + "/emulator/panel/static/panel.js", timeout=TIMEOUT).status_code == 200
    assert requests.get(emu.url + "/emulator/v1/devices", timeout=TIMEOUT).status_code == 200


def test_the_control_port_serves_the_panel_where_no_rule_reaches():
    with Emulator({"devices": [{"type": "safetymonitor"}, {"type": "focuser"}]}, control_port=0) as emu:
        assert emu.panel_url == f"http://127.0.0.1:{emu.control_port}/"
        emu.faults.add({"action": {"kind": "http_status", "status": 503}})
        assert requests.get(emu.url + "/", timeout=TIMEOUT).status_code == 503
        page = requests.get(emu.panel_url, timeout=TIMEOUT)
        assert page.status_code == 200 and "Rehearsal Focuser" in page.text and "http_status" in page.text
        assert requests.get(emu.panel_url + "emulator/panel/static/panel.js", timeout=TIMEOUT).status_code == 200
        assert requests.get(emu.panel_url + "emulator/v1/devices", timeout=TIMEOUT).status_code == 200
        # the devices' setup URLs are the devices' port's, not the control port's
        assert requests.get(emu.panel_url + "setup/v1/focuser/0/setup", timeout=TIMEOUT).status_code == 404


def test_a_profile_that_answers_root_itself_keeps_it():
    """alpaca-simulators' GET / is that simulator's JSON; its panel is at /emulator/panel."""
    with Emulator(profile="alpaca-simulators") as emu:
        root = requests.get(emu.url + "/", timeout=TIMEOUT)
        assert root.status_code == 200 and root.headers["Content-Type"].startswith("application/json")
        assert emu.panel_url == emu.url + "/emulator/panel"
        page = requests.get(emu.panel_url, timeout=TIMEOUT)
        assert page.status_code == 200 and "data-device='telescope/0'" in page.text
