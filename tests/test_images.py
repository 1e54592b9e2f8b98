"""Images: ImageBytes (reference section 8) and JSON ImageArray agree pixel for pixel, and are deterministic.

Served tests fetch with the real alpyca client (which asks for ImageBytes) and with plain
``requests`` without an Accept header (JSON), then compare the numpy arrays.
"""

from __future__ import annotations

import json
import struct
import threading
import time

import numpy as np
import requests
from alpaca.camera import Camera

from emulator import Emulator
from emulator.http import imagearray
from emulator.sim import images
from support import wait_for

HEADER = struct.Struct("<iiIIiiiiiii")


def _camera_emu(seed: int = 7, **options) -> Emulator:
    cam = {"type": "camera", "width": 96, "height": 64, "readout_time_s": 0.5, "connected": True, "star_count": 30}
    cam.update(options)
    return Emulator({"devices": [cam, {"type": "focuser"}]}, time_scale=100, seed=seed)


def _expose(cam: Camera, duration: float = 1.0, light: bool = True) -> None:
    cam.StartExposure(duration, light)
    wait_for(lambda: cam.ImageReady, what="the exposure to finish", timeout=20, interval=0.01)


def _json_image(emu: Emulator, client_tx: int = 0) -> tuple[dict, requests.Response]:
    r = requests.get(f"{emu.url}/api/v1/camera/0/imagearray", params={"ClientTransactionID": client_tx}, timeout=30)
    return r.json(), r


def _imagebytes(emu: Emulator, client_tx: int = 0) -> requests.Response:
    return requests.get(
        f"{emu.url}/api/v1/camera/0/imagearray",
        params={"ClientTransactionID": client_tx},
        headers={"Accept": "application/imagebytes"},
        timeout=30,
    )


# -- encoding, without a server -------------------------------------------------------------------


def test_transmission_type_is_the_smallest_that_fits():
    assert imagearray.transmission_type(np.array([[0, 255]]))[0] == imagearray.BYTE
    assert imagearray.transmission_type(np.array([[0, 65535]]))[0] == imagearray.UINT16
    assert imagearray.transmission_type(np.array([[-5, 300]]))[0] == imagearray.INT16
    assert imagearray.transmission_type(np.array([[-5, 70000]]))[0] == imagearray.INT32


def test_imagebytes_layout_is_alpaca_order_little_endian():
    pixels = np.arange(4 * 3, dtype=np.int32).reshape(4, 3) * 1000  # [x, y], values up to 11000
    body = imagearray.imagebytes(images.ImageData(pixels), 11, 22)
    fields = HEADER.unpack_from(body)
    assert fields == (1, 0, 11, 22, 44, imagearray.INT32, imagearray.UINT16, 2, 4, 3, 0)
    data = np.frombuffer(body[44:], dtype="<u2")
    # x outermost, y fastest: P00, P01, P02, P10, ...
    assert data.tolist() == [pixels[x, y] for x in range(4) for y in range(3)]


def test_imagebytes_colour_order_plane_fastest():
    pixels = np.arange(2 * 2 * 3, dtype=np.int32).reshape(2, 2, 3)
    body = imagearray.imagebytes(images.ImageData(pixels), 0, 1)
    fields = HEADER.unpack_from(body)
    assert fields[6:] == (imagearray.BYTE, 3, 2, 2, 3)
    assert list(body[44:]) == [pixels[x, y, p] for x in range(2) for y in range(2) for p in range(3)]


def test_imagebytes_error_form():
    body = imagearray.imagebytes_error(0x40B, "no image – yet", 5, 6)
    number, ctid, stid, start = HEADER.unpack_from(body)[1:5]
    assert (number, ctid, stid, start) == (0x40B, 5, 6, 44)
    assert all(v >= 0 for v in HEADER.unpack_from(body))
    assert body[44:].decode("utf-8") == "no image – yet"


def test_json_streams_in_chunks_and_parses_back():
    pixels = np.random.default_rng(1).integers(0, 65535, size=(300, 200), dtype=np.int32)
    chunks = list(imagearray.json_chunks(images.ImageData(pixels), 3, 4, chunk_pixels=10_000))
    assert len(chunks) >= 8  # header, six blocks of 50 columns, tail: no single giant piece
    assert max(len(c) for c in chunks) < 200_000
    body = json.loads(b"".join(chunks))
    assert list(body) == ["Type", "Rank", "Value", "ClientTransactionID", "ServerTransactionID", "ErrorNumber", "ErrorMessage"]
    assert body["Type"] == 2 and body["Rank"] == 2
    assert np.array_equal(np.array(body["Value"]), pixels)
    colour = pixels[:30, :20, None].repeat(3, axis=2)
    body = json.loads(imagearray.json_body(images.ImageData(colour), 0, 1))
    assert body["Rank"] == 3 and np.array_equal(np.array(body["Value"]), colour)


def test_render_is_deterministic_and_noise_depends_on_exposure_number():
    stars = images.make_star_field(3, 0, 64, 48, 20, 3.0, 20000)
    spec = images.FrameSpec(0, 0, 64, 48, 1, 1, 10.0, True)
    a = images.render_frame(stars, spec, images.exposure_rng(3, 0, 1))
    b = images.render_frame(images.make_star_field(3, 0, 64, 48, 20, 3.0, 20000), spec, images.exposure_rng(3, 0, 1))
    c = images.render_frame(stars, spec, images.exposure_rng(3, 0, 2))
    assert a.dtype == np.int32 and a.shape == (64, 48)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    # the same stars in both frames: strongly correlated, different only by noise
    assert np.corrcoef(a.ravel(), c.ravel())[0, 1] > 0.9


def test_dark_frame_has_no_stars_and_clips_to_max_adu():
    stars = images.make_star_field(1, 0, 64, 48, 50, 3.0, 1e6)
    light = images.render_frame(stars, images.FrameSpec(0, 0, 64, 48, 1, 1, 10.0, True, max_adu=4095), images.exposure_rng(1, 0, 1))
    dark = images.render_frame(stars, images.FrameSpec(0, 0, 64, 48, 1, 1, 10.0, False, max_adu=4095), images.exposure_rng(1, 0, 1))
    assert light.max() == 4095  # saturated stars
    assert dark.max() < 1200 and light.min() >= 0


# -- served: ImageBytes and JSON agree --------------------------------------------------------------


def test_imagebytes_and_json_equal_mono():
    with _camera_emu() as emu:
        cam = Camera(emu.address, 0)
        _expose(cam)
        via_alpyca = np.array(cam.ImageArray)  # alpyca asks for ImageBytes
        info = cam.ImageArrayInfo
        assert (info.Rank, info.Dimension1, info.Dimension2) == (2, 96, 64)
        assert info.TransmissionElementType == imagearray.UINT16
        body, resp = _json_image(emu)
        assert resp.headers["Content-Type"].startswith("application/json")
        via_json = np.array(body["Value"])
        assert via_json.shape == via_alpyca.shape == (96, 64)
        assert np.array_equal(via_json, via_alpyca)
        assert body["Type"] == 2 and body["Rank"] == 2 and body["ErrorNumber"] == 0


def test_imagebytes_and_json_equal_colour():
    with _camera_emu(sensor="colour") as emu:
        cam = Camera(emu.address, 0)
        _expose(cam)
        raw = cam.ImageArrayRaw  # flat ImageBytes data, Alpaca order
        info = cam.ImageArrayInfo
        assert (info.Rank, info.Dimension1, info.Dimension2, info.Dimension3) == (3, 96, 64, 3)
        via_bytes = np.array(raw).reshape(96, 64, 3)
        body, _ = _json_image(emu)
        assert body["Rank"] == 3
        via_json = np.array(body["Value"])
        assert np.array_equal(via_json, via_bytes)
        # the planes differ (a colour image, not three copies)
        assert not np.array_equal(via_json[:, :, 0], via_json[:, :, 2])


def test_imagebytes_header_fields_served():
    with _camera_emu(max_adu=4095) as emu:
        cam = Camera(emu.address, 0)
        _expose(cam)
        r = _imagebytes(emu, client_tx=4242)
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "application/imagebytes"
        version, error, ctid, stid, start, itype, ttype, rank, d1, d2, d3 = HEADER.unpack_from(r.content)
        assert (version, error, ctid, start, itype, rank, d1, d2, d3) == (1, 0, 4242, 44, imagearray.INT32, 2, 96, 64, 0)
        assert stid >= 1
        assert ttype == imagearray.UINT16  # 12-bit data fits UInt16 (not Byte: bias 1000 > 255)
        assert len(r.content) == 44 + 96 * 64 * 2
        pixels = np.frombuffer(r.content[44:], dtype="<u2").reshape(96, 64)
        assert pixels.max() <= 4095


def test_int32_transmission_when_values_exceed_16_bits():
    with _camera_emu(max_adu=1_000_000, bias_adu=100_000) as emu:
        cam = Camera(emu.address, 0)
        _expose(cam)
        r = _imagebytes(emu)
        assert HEADER.unpack_from(r.content)[6] == imagearray.INT32
        via_bytes = np.frombuffer(r.content[44:], dtype="<i4").reshape(96, 64)
        body, _ = _json_image(emu)
        assert np.array_equal(np.array(body["Value"]), via_bytes)


def test_error_before_any_image_in_both_forms():
    with _camera_emu() as emu:
        r = _imagebytes(emu, client_tx=9)
        assert r.headers["Content-Type"] == "application/imagebytes"
        fields = HEADER.unpack_from(r.content)
        assert fields[1] == 0x40B and fields[2] == 9 and fields[4] == 44
        assert "no image" in r.content[44:].decode("utf-8")
        body, resp = _json_image(emu)
        assert resp.headers["Content-Type"].startswith("application/json")
        assert body["ErrorNumber"] == 0x40B and "Value" not in body


def test_same_seed_same_image_other_seed_other_image():
    frames = []
    for seed in (11, 11, 12):
        with _camera_emu(seed=seed) as emu:
            cam = Camera(emu.address, 0)
            _expose(cam, 2.0)
            first = np.array(cam.ImageArray)
            _expose(cam, 2.0)
            second = np.array(cam.ImageArray)
            frames.append((first, second))
    assert np.array_equal(frames[0][0], frames[1][0])
    assert np.array_equal(frames[0][1], frames[1][1])
    assert not np.array_equal(frames[0][0], frames[0][1])  # noise differs between exposures
    assert not np.array_equal(frames[0][0], frames[2][0])  # and between seeds


def test_large_json_image_does_not_stall_other_devices():
    size = 1024  # a million pixels: about 5 MB of JSON, streamed in chunks of 64 columns
    with _camera_emu(width=size, height=size, star_count=200) as emu:
        cam = Camera(emu.address, 0)
        _expose(cam)
        cam.ImageArrayRaw  # render once, so the download below is pure encoding and transfer
        started, proceed = threading.Event(), threading.Event()
        result: dict = {}

        def download() -> None:
            # Take the first chunk, then hold the response open until the checks are done, so
            # they certainly run while the server is still encoding and sending this image.
            try:
                with requests.get(f"{emu.url}/api/v1/camera/0/imagearray", stream=True, timeout=60) as r:
                    chunks = r.iter_content(chunk_size=65536)
                    received = [next(chunks)]
                    started.set()
                    proceed.wait(30)
                    received.extend(chunks)
                    result["body"] = b"".join(received)
            except BaseException as exc:  # reported by the main thread
                result["error"] = exc
            finally:
                started.set()

        worker = threading.Thread(target=download, name="json-download")
        worker.start()
        try:
            assert started.wait(30)
            latencies = []
            calls_during_download = 0
            for _ in range(5):
                t0 = time.monotonic()
                r = requests.get(f"{emu.url}/api/v1/focuser/0/connected", timeout=10)
                latencies.append(time.monotonic() - t0)
                assert r.status_code == 200 and r.json()["ErrorNumber"] == 0
                calls_during_download += worker.is_alive()
                t0 = time.monotonic()
                assert requests.get(f"{emu.url}/api/v1/camera/0/camerastate", timeout=10).json()["Value"] == 0
                latencies.append(time.monotonic() - t0)
        finally:
            proceed.set()
            worker.join(60)
        assert "error" not in result, result.get("error")
        assert calls_during_download == 5
        # generous (CI machines are loaded): the point is that neither the worker pool, the GIL nor
        # the camera's lock is held for the whole download
        assert max(latencies) < 3.0, latencies
        body = json.loads(result["body"])
        assert body["Rank"] == 2 and len(body["Value"]) == size and len(body["Value"][0]) == size
