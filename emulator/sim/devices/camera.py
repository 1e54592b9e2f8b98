"""Camera (ICameraV4): exposures on the simulation clock, a cooler, synthetic star-field images.

An exposure is a record (start, duration, readout time, subframe) and its phase is computed from
the clock when asked: exposing (2) until ``start + duration``, reading (3) for the readout time,
then idle (0) with ImageReady. The image is rendered on the first ImageArray and cached, so an
exposure nobody downloads costs nothing. The cooler is first-order: CCDTemperature approaches its
target exponentially with ``cooler_time_constant_s``, from wherever it was when the target moved.

Rules followed from the Camera interface: NumX/NumY/StartX/StartY are not checked when set but at
StartExposure (InvalidValue); BinX/BinY are checked when set and, without asymmetric binning,
setting one sets both; ImageArray without an image is InvalidOperation; PercentCompleted outside
an exposure is InvalidOperation; ImageArrayVariant is NotImplemented, as Alpaca requires.

With a telescope in the observatory (``render_sky`` unset or true) the image is the sky the optical
train saw: :mod:`emulator.sim.optics` reads the peers when the exposure starts and as it ends (the
clock held at the end instant), :mod:`emulator.sim.scene` turns that into light on the sensor and
:func:`emulator.sim.images.render_sky` into pixels. Without one, the fixed seeded star field.

Simulation-only state for the control API: ``ReadoutStuck`` (the camera stays in Reading until
cleared), ``ExposureFails`` (exposures end in CameraState Error and ImageReady raises),
``CoolerFault`` (the cooler runs flat out and cannot cool), ``AmbientTemperature``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Literal

import numpy as np
from pydantic import Field, model_validator

from emulator.sim import images, optics, scene
from emulator.sim.clock import SimClock
from emulator.sim.devices.base import Device, DeviceConfig, get, put
from emulator.sim.errors import AscomError, InvalidOperation, InvalidValue, NotImplementedErr, check_range

IDLE, WAITING, EXPOSING, READING, DOWNLOAD, ERROR = range(6)
SENSOR_TYPES = {"mono": 0, "colour": 1, "rggb": 2}
#: Relative response of the RGGB filter cells at (x % 2, y % 2) = (0,0), (0,1), (1,0), (1,1).
RGGB_RESPONSE = (0.8, 1.0, 1.0, 0.6)
FAST_READOUT_FACTOR = 0.25


class CameraConfig(DeviceConfig):
    type: Literal["camera"] = "camera"

    # sensor
    width: int = Field(800, ge=1, le=16384, description="CameraXSize: sensor width in unbinned pixels")
    height: int = Field(600, ge=1, le=16384, description="CameraYSize: sensor height in unbinned pixels")
    pixel_size_x_um: float = Field(3.76, gt=0, le=100, description="PixelSizeX in microns")
    pixel_size_y_um: float = Field(3.76, gt=0, le=100, description="PixelSizeY in microns")
    sensor: Literal["mono", "colour", "rggb"] = Field(
        "mono", description="mono (SensorType 0), colour (SensorType 1, ImageArray Rank 3) or rggb (SensorType 2, Bayer)"
    )
    bayer_offset_x: int = Field(0, ge=0, le=1, description="BayerOffsetX of an rggb sensor")
    bayer_offset_y: int = Field(0, ge=0, le=1, description="BayerOffsetY of an rggb sensor")
    sensor_name: str = Field("Rehearsal CMOS", description="SensorName")
    max_adu: int = Field(65535, ge=1, le=2147483647, description="MaxADU: 65535 for 16-bit pixels (UInt16 range, sent as Int32)")
    electrons_per_adu: float = Field(1.0, gt=0, description="ElectronsPerADU")
    full_well_capacity: float | None = Field(None, gt=0, description="FullWellCapacity in e- (default: max_adu * electrons_per_adu)")
    has_shutter: bool = Field(True, description="HasShutter: a mechanical shutter (dark frames need no cover)")

    # capabilities
    has_cooler: bool = Field(True, description="A cooler at all (False: CanSetCCDTemperature and CanGetCoolerPower are False)")
    can_set_ccd_temperature: bool = Field(True, description="CanSetCCDTemperature: a regulated cooler")
    can_get_cooler_power: bool = Field(True, description="CanGetCoolerPower")
    can_abort_exposure: bool = Field(True, description="CanAbortExposure")
    can_stop_exposure: bool = Field(True, description="CanStopExposure")
    can_pulse_guide: bool = Field(True, description="CanPulseGuide (ST-4 port)")
    can_asymmetric_bin: bool = Field(False, description="CanAsymmetricBin: BinX and BinY set independently")
    can_fast_readout: bool = Field(False, description="CanFastReadout: FastReadout instead of ReadoutModes")
    supports_sub_exposure: bool = Field(True, description="SubExposureDuration implemented (else NotImplemented)")
    max_bin_x: int = Field(4, ge=1, le=64, description="MaxBinX")
    max_bin_y: int = Field(4, ge=1, le=64, description="MaxBinY")

    # exposure and readout
    exposure_min_s: float = Field(0.0, ge=0, description="ExposureMin (0 allows bias frames)")
    exposure_max_s: float = Field(3600.0, gt=0, description="ExposureMax")
    exposure_resolution_s: float = Field(0.001, ge=0, description="ExposureResolution")
    readout_time_s: float = Field(1.0, ge=0, description="Simulated seconds in Reading after an exposure (normal mode)")
    readout_modes: list[str] = Field(default_factory=lambda: ["Normal", "Fast"], min_length=1, description="ReadoutModes; modes after the first read out 4x faster")

    # gain and offset: 'value' = GainMin/GainMax, 'index' = Gains list, 'none' = NotImplemented
    gain_mode: Literal["value", "index", "none"] = Field("value", description="Gain mode: value (GainMin/GainMax), index (Gains) or none")
    gain_min: int = Field(0, description="GainMin in value mode")
    gain_max: int = Field(500, description="GainMax in value mode")
    gains: list[str] = Field(default_factory=lambda: ["Low", "Medium", "High"], min_length=1, description="Gains in index mode")
    gain: int = Field(100, description="Initial Gain (a value in value mode, an index in index mode)")
    offset_mode: Literal["value", "index", "none"] = Field("value", description="Offset mode: value (OffsetMin/OffsetMax), index (Offsets) or none")
    offset_min: int = Field(0, description="OffsetMin in value mode")
    offset_max: int = Field(1000, description="OffsetMax in value mode")
    offsets: list[str] = Field(default_factory=lambda: ["Low", "Medium", "High"], min_length=1, description="Offsets in index mode")
    offset: int = Field(10, description="Initial Offset (a value in value mode, an index in index mode)")

    # cooler
    ambient_temperature_c: float = Field(15.0, ge=-60, le=60, description="Ambient (heat sink) temperature")
    cooler_on: bool = Field(False, description="Initial CoolerOn")
    set_ccd_temperature_c: float = Field(-10.0, description="Initial SetCCDTemperature")
    setpoint_min_c: float = Field(-50.0, description="Lowest SetCCDTemperature accepted")
    setpoint_max_c: float = Field(40.0, description="Highest SetCCDTemperature accepted")
    cooler_max_delta_c: float = Field(40.0, gt=0, description="How far below ambient the cooler can pull the sensor")
    cooler_time_constant_s: float = Field(60.0, gt=0, description="Time constant of the exponential approach to the setpoint")

    # synthetic sky
    star_count: int = Field(150, ge=0, le=100000, description="Stars on the whole sensor")
    star_fwhm_px: float = Field(3.0, gt=0, le=100, description="Star FWHM in unbinned pixels")
    star_flux_max: float = Field(20000.0, ge=0, description="Brightest star, e-/s")
    sky_level: float = Field(20.0, ge=0, description="Sky background, e-/s per unbinned pixel")
    dark_current: float = Field(0.1, ge=0, description="Dark current, e-/s per unbinned pixel")
    bias_adu: float = Field(1000.0, ge=0, description="Bias level in ADU")
    noise_level: float = Field(8.0, ge=0, description="Read noise in ADU (shot noise is added on top)")
    dark_reference_c: float = Field(15.0, ge=-100, le=60, description="CCDTemperature at which dark_current holds")
    dark_doubling_c: float = Field(6.3, gt=0, le=50, description="Dark current doubles every this many deg C warmer")

    # the sky through the optical train (with a telescope in the observatory)
    render_sky: bool | None = Field(
        None, description="Render the sky the mount points at, through focuser, filter, cover, dome and weather "
        "(default: when the observatory has a telescope; false: the fixed star field above)"
    )
    zero_point_e_s_m2: float = Field(4.0e9, gt=0, description="e-/s per m^2 of aperture from a V = 0 star (QE and optics included)")
    night_sky_mag: float = Field(21.0, ge=10, le=23, description="Dark-night sky brightness, V mag per square arcsec")
    flat_rate_e_s: float = Field(20000.0, ge=0, description="e-/s per unbinned pixel from the calibrator at MaxBrightness (cover closed)")

    @model_validator(mode="after")
    def _consistent(self) -> "CameraConfig":
        if self.exposure_min_s > self.exposure_max_s:
            raise ValueError(f"exposure_min_s {self.exposure_min_s} is above exposure_max_s {self.exposure_max_s}")
        if self.setpoint_min_c > self.setpoint_max_c:
            raise ValueError(f"setpoint_min_c {self.setpoint_min_c} is above setpoint_max_c {self.setpoint_max_c}")
        if self.gain_mode == "value" and not self.gain_min <= self.gain <= self.gain_max:
            raise ValueError(f"gain {self.gain} is outside gain_min..gain_max ({self.gain_min}..{self.gain_max})")
        if self.gain_mode == "index" and not 0 <= self.gain < len(self.gains):
            raise ValueError(f"gain {self.gain} is not an index into gains (0..{len(self.gains) - 1})")
        if self.offset_mode == "value" and not self.offset_min <= self.offset <= self.offset_max:
            raise ValueError(f"offset {self.offset} is outside offset_min..offset_max ({self.offset_min}..{self.offset_max})")
        if self.offset_mode == "index" and not 0 <= self.offset < len(self.offsets):
            raise ValueError(f"offset {self.offset} is not an index into offsets (0..{len(self.offsets) - 1})")
        if not self.has_cooler:
            for flag in ("can_set_ccd_temperature", "can_get_cooler_power"):
                if flag in self.model_fields_set and getattr(self, flag):
                    raise ValueError(f"{flag} = true contradicts has_cooler = false")
                object.__setattr__(self, flag, False)
        if self.bias_adu > self.max_adu:
            raise ValueError(f"bias_adu {self.bias_adu} is above max_adu {self.max_adu}")
        return self


@dataclass
class _Exposure:
    """One exposure: requested and actual timing, the subframe it used, and its outcome."""

    number: int
    start: float  # simulated seconds
    start_utc: datetime
    duration: float
    light: bool
    readout_s: float
    spec: images.FrameSpec
    fails: bool
    train_start: optics.TrainState | None = None  # the optical train as the exposure began (sky render)
    train_end: optics.TrainState | None = None  # ... and as it ended
    stopped_at: float | None = None
    done: bool = False

    @property
    def exposure_end(self) -> float:
        return self.stopped_at if self.stopped_at is not None else self.start + self.duration

    @property
    def readout_end(self) -> float:
        return self.exposure_end + self.readout_s

    @property
    def actual_duration(self) -> float:
        return self.exposure_end - self.start


class Camera(Device):
    device_type = "camera"
    type_name = "Camera"
    interface_version = 4
    config_class = CameraConfig
    state_names = ("CameraState", "CCDTemperature", "CoolerPower", "HeatSinkTemperature", "ImageReady", "IsPulseGuiding", "PercentCompleted")

    config: CameraConfig

    def __init__(self, config: CameraConfig, clock: SimClock, seed: int = 0) -> None:
        super().__init__(config, clock, seed)
        self._seed = seed
        c = config
        self._bin_x = self._bin_y = 1
        self._start_x = self._start_y = 0
        self._num_x, self._num_y = c.width, c.height
        self._gain, self._offset = c.gain, c.offset
        self._readout_mode = 0
        self._fast_readout = False
        self._sub_exposure = 1.0
        self._exposure: _Exposure | None = None  # the current or last exposure
        self._image: np.ndarray | None = None  # rendered pixels of the last good exposure
        self._image_ready = False
        self._failed = False
        self._last: _Exposure | None = None  # the last exposure that produced an image
        self._exposure_count = 0
        self._stars: images.StarField | None = None
        self._guide_until = -math.inf
        self._readout_stuck = False
        self._exposure_fails = False
        # cooler: temperature at the anchor time, relaxing towards the current target
        self._ambient = c.ambient_temperature_c
        self._cooler_on = c.cooler_on and c.can_set_ccd_temperature
        self._setpoint = c.set_ccd_temperature_c
        self._cooler_fault = False
        self._anchor_time = clock.now()
        self._anchor_temp = self._cooler_target()

    # -- exposure state machine ---------------------------------------------------------------

    def _phase(self) -> int:
        """The CameraState now, settling a finished exposure into an image (or an error)."""
        exp = self._exposure
        if exp is None:
            return ERROR if self._failed else IDLE
        if exp.done:
            return ERROR if self._failed else IDLE
        now = self.clock.now()
        if now < exp.exposure_end:
            return EXPOSING
        if now < exp.readout_end or self._readout_stuck:
            return READING
        exp.done = True
        if exp.train_start is not None:
            with self.clock.at(exp.exposure_end):
                exp.train_end = self._read_train() or exp.train_start
        if exp.fails or self._exposure_fails:
            self._failed = True
            return ERROR
        self._image_ready = True
        self._last = exp
        return IDLE

    def _busy(self) -> bool:
        return self._phase() in (EXPOSING, READING)

    def _readout_time(self) -> float:
        fast = self._fast_readout if self.config.can_fast_readout else self._readout_mode > 0
        return self.config.readout_time_s * (FAST_READOUT_FACTOR if fast else 1.0)

    def _check_subframe(self) -> None:
        c = self.config
        for axis, start, num, binning, size in (
            ("X", self._start_x, self._num_x, self._bin_x, c.width),
            ("Y", self._start_y, self._num_y, self._bin_y, c.height),
        ):
            if num < 1:
                raise InvalidValue(f"StartExposure: Num{axis} {num} must be at least 1")
            if start < 0:
                raise InvalidValue(f"StartExposure: Start{axis} {start} must not be negative")
            if (start + num) * binning > size:
                raise InvalidValue(
                    f"StartExposure: Start{axis} {start} + Num{axis} {num} at Bin{axis} {binning} "
                    f"exceeds the sensor ({size} unbinned pixels, {size // binning} binned)"
                )

    def _frame_spec(self, duration: float, light: bool) -> images.FrameSpec:
        c = self.config
        return images.FrameSpec(
            start_x=self._start_x,
            start_y=self._start_y,
            num_x=self._num_x,
            num_y=self._num_y,
            bin_x=self._bin_x,
            bin_y=self._bin_y,
            duration=duration,
            light=light or not c.has_shutter,  # without a shutter a "dark" still sees the sky
            planes=3 if c.sensor == "colour" else 1,
            bayer=RGGB_RESPONSE if c.sensor == "rggb" else None,
            bayer_offset=(c.bayer_offset_x, c.bayer_offset_y),
            sky_rate=c.sky_level,
            dark_rate=c.dark_current * 2.0 ** ((self._temperature() - c.dark_reference_c) / c.dark_doubling_c),
            bias_adu=c.bias_adu,
            read_noise_adu=c.noise_level,
            electrons_per_adu=c.electrons_per_adu,
            max_adu=c.max_adu,
        )

    def _sees_sky(self) -> bool:
        if self.config.render_sky is False or self.site is None:
            return False
        return self.site.first("telescope") is not None

    def _read_train(self) -> optics.TrainState | None:
        if self.site is None:
            return None
        c = self.config
        return optics.read_train(self.site, self.clock.utcnow(), c.night_sky_mag)

    def _render_sky(self, exp: _Exposure, spec: images.FrameSpec) -> np.ndarray:
        c = self.config
        start = exp.train_start
        assert start is not None
        image = None
        if spec.light:
            image = scene.sky_image(
                start, exp.train_end or start, seed=self._seed, width=c.width, height=c.height,
                pixel_x_um=c.pixel_size_x_um, pixel_y_um=c.pixel_size_y_um, zero_point=c.zero_point_e_s_m2,
                flat_rate=c.flat_rate_e_s, duration=spec.duration,
            )
        return images.render_sky(image, spec, (self._seed, self.number, exp.number), c.height // spec.bin_y)

    def _render(self, exp: _Exposure) -> np.ndarray:
        c = self.config
        spec = exp.spec
        if exp.stopped_at is not None:
            spec = dataclasses.replace(spec, duration=exp.actual_duration)
        if exp.train_start is not None:
            pixels = self._render_sky(exp, spec)
        else:
            if self._stars is None:
                self._stars = images.make_star_field(
                    self._seed, self.number, c.width, c.height, c.star_count, c.star_fwhm_px, c.star_flux_max
                )
            pixels = images.render_frame(self._stars, spec, images.exposure_rng(self._seed, self.number, exp.number))
        pixels.setflags(write=False)
        return pixels

    @put("startexposure", Duration=float, Light=bool)
    def startexposure(self, Duration: float, Light: bool) -> None:
        c = self.config
        if self._busy():
            raise InvalidOperation("StartExposure: an exposure is already in progress")
        if not math.isfinite(Duration) or Duration < 0:
            raise InvalidValue(f"StartExposure: Duration {Duration} must not be negative")
        check_range("StartExposure Duration", Duration, c.exposure_min_s, c.exposure_max_s)
        if not c.can_asymmetric_bin and self._bin_x != self._bin_y:
            raise InvalidOperation(f"StartExposure: BinX {self._bin_x} and BinY {self._bin_y} differ and CanAsymmetricBin is False")
        self._check_subframe()
        self._exposure_count += 1
        self._exposure = _Exposure(
            number=self._exposure_count,
            start=self.clock.now(),
            start_utc=self.clock.utcnow(),
            duration=Duration,
            light=Light,
            readout_s=self._readout_time(),
            spec=self._frame_spec(Duration, Light),
            fails=self._exposure_fails,
            train_start=self._read_train() if self._sees_sky() else None,
        )
        self._image = None
        self._image_ready = False
        self._failed = False

    @put("stopexposure")
    def stopexposure(self) -> None:
        self._require(self.config.can_stop_exposure, "StopExposure", "CanStopExposure is False")
        if self._phase() == EXPOSING:
            self._exposure.stopped_at = self.clock.now()  # type: ignore[union-attr]

    @put("abortexposure")
    def abortexposure(self) -> None:
        self._require(self.config.can_abort_exposure, "AbortExposure", "CanAbortExposure is False")
        phase = self._phase()
        if phase in (EXPOSING, READING):
            self._exposure = None
            self._image = None
            self._image_ready = False
        elif phase == ERROR:
            self._failed = False  # acknowledged: back to Idle

    @get("camerastate")
    def camerastate(self) -> int:
        return self._phase()

    @get("imageready")
    def imageready(self) -> bool:
        if self._phase() == ERROR:
            raise AscomError("the last exposure failed (simulated camera error)")
        return self._image_ready

    @get("percentcompleted")
    def percentcompleted(self) -> int:
        phase = self._phase()
        if phase not in (EXPOSING, READING):
            raise InvalidOperation("PercentCompleted is only valid while exposing or reading")
        exp = self._exposure
        assert exp is not None
        total = exp.readout_end - exp.start
        if total <= 0:
            return 100
        return max(0, min(100, int(100 * (self.clock.now() - exp.start) / total)))

    @get("imagearray")
    def imagearray(self) -> images.ImageData:
        frame = self.latest_frame()
        if frame is None:
            raise InvalidOperation("ImageArray: no image is available (take an exposure and wait for ImageReady)")
        return images.ImageData(frame)

    def latest_frame(self) -> np.ndarray | None:
        """The last exposure's pixels, (x, y) as ImageArray has them, or None before one is ready.

        For the web panel's preview: never raises, and renders the frame if no client has yet."""
        self._phase()
        if not self._image_ready or self._last is None:
            return None
        if self._image is None:
            self._image = self._render(self._last)
        return self._image

    @get("imagearrayvariant")
    def imagearrayvariant(self) -> Any:
        raise NotImplementedErr("ImageArrayVariant is not implemented by Alpaca devices; use ImageArray")

    @get("lastexposureduration")
    def lastexposureduration(self) -> float:
        self._phase()
        if self._last is None:
            raise InvalidOperation("LastExposureDuration: no exposure has completed yet")
        return self._last.actual_duration

    @get("lastexposurestarttime")
    def lastexposurestarttime(self) -> str:
        self._phase()
        if self._last is None:
            raise InvalidOperation("LastExposureStartTime: no exposure has completed yet")
        return self._last.start_utc.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]

    # -- geometry -------------------------------------------------------------------------------

    @get("cameraxsize")
    def cameraxsize(self) -> int:
        return self.config.width

    @get("cameraysize")
    def cameraysize(self) -> int:
        return self.config.height

    @get("pixelsizex")
    def pixelsizex(self) -> float:
        return self.config.pixel_size_x_um

    @get("pixelsizey")
    def pixelsizey(self) -> float:
        return self.config.pixel_size_y_um

    @get("maxbinx")
    def maxbinx(self) -> int:
        return self.config.max_bin_x

    @get("maxbiny")
    def maxbiny(self) -> int:
        return self.config.max_bin_y

    @get("binx")
    def get_binx(self) -> int:
        return self._bin_x

    @put("binx", BinX=int)
    def put_binx(self, BinX: int) -> None:
        check_range("BinX", BinX, 1, self.config.max_bin_x)
        self._bin_x = BinX
        if not self.config.can_asymmetric_bin:
            self._bin_y = BinX

    @get("biny")
    def get_biny(self) -> int:
        return self._bin_y

    @put("biny", BinY=int)
    def put_biny(self, BinY: int) -> None:
        check_range("BinY", BinY, 1, self.config.max_bin_y)
        self._bin_y = BinY
        if not self.config.can_asymmetric_bin:
            self._bin_x = BinY

    # Subframe values are not checked when set, only at StartExposure (as the interface says).
    @get("numx")
    def get_numx(self) -> int:
        return self._num_x

    @put("numx", NumX=int)
    def put_numx(self, NumX: int) -> None:
        self._num_x = NumX

    @get("numy")
    def get_numy(self) -> int:
        return self._num_y

    @put("numy", NumY=int)
    def put_numy(self, NumY: int) -> None:
        self._num_y = NumY

    @get("startx")
    def get_startx(self) -> int:
        return self._start_x

    @put("startx", StartX=int)
    def put_startx(self, StartX: int) -> None:
        self._start_x = StartX

    @get("starty")
    def get_starty(self) -> int:
        return self._start_y

    @put("starty", StartY=int)
    def put_starty(self, StartY: int) -> None:
        self._start_y = StartY

    # -- sensor ---------------------------------------------------------------------------------

    @get("sensortype")
    def sensortype(self) -> int:
        return SENSOR_TYPES[self.config.sensor]

    @get("sensorname")
    def sensorname(self) -> str:
        return self.config.sensor_name

    @get("bayeroffsetx")
    def bayeroffsetx(self) -> int:
        self._require(self.config.sensor != "mono", "BayerOffsetX", "a monochrome camera has no Bayer matrix")
        return self.config.bayer_offset_x

    @get("bayeroffsety")
    def bayeroffsety(self) -> int:
        self._require(self.config.sensor != "mono", "BayerOffsetY", "a monochrome camera has no Bayer matrix")
        return self.config.bayer_offset_y

    @get("maxadu")
    def maxadu(self) -> int:
        return self.config.max_adu

    @get("electronsperadu")
    def electronsperadu(self) -> float:
        return self.config.electrons_per_adu

    @get("fullwellcapacity")
    def fullwellcapacity(self) -> float:
        c = self.config
        if c.full_well_capacity is not None:
            return c.full_well_capacity
        return c.max_adu * c.electrons_per_adu

    @get("hasshutter")
    def hasshutter(self) -> bool:
        return self.config.has_shutter

    @get("exposuremin")
    def exposuremin(self) -> float:
        return self.config.exposure_min_s

    @get("exposuremax")
    def exposuremax(self) -> float:
        return self.config.exposure_max_s

    @get("exposureresolution")
    def exposureresolution(self) -> float:
        return self.config.exposure_resolution_s

    # -- capabilities ----------------------------------------------------------------------------

    @get("canabortexposure")
    def canabortexposure(self) -> bool:
        return self.config.can_abort_exposure

    @get("canasymmetricbin")
    def canasymmetricbin(self) -> bool:
        return self.config.can_asymmetric_bin

    @get("canfastreadout")
    def canfastreadout(self) -> bool:
        return self.config.can_fast_readout

    @get("cangetcoolerpower")
    def cangetcoolerpower(self) -> bool:
        return self.config.can_get_cooler_power

    @get("canpulseguide")
    def canpulseguide(self) -> bool:
        return self.config.can_pulse_guide

    @get("cansetccdtemperature")
    def cansetccdtemperature(self) -> bool:
        return self.config.can_set_ccd_temperature

    @get("canstopexposure")
    def canstopexposure(self) -> bool:
        return self.config.can_stop_exposure

    # -- gain, offset, readout -------------------------------------------------------------------

    @get("gain")
    def get_gain(self) -> int:
        self._require(self.config.gain_mode != "none", "Gain", "this camera has no gain control")
        return self._gain

    @put("gain", Gain=int)
    def put_gain(self, Gain: int) -> None:
        c = self.config
        self._require(c.gain_mode != "none", "Gain", "this camera has no gain control")
        if c.gain_mode == "value":
            check_range("Gain", Gain, c.gain_min, c.gain_max)
        else:
            check_range("Gain", Gain, 0, len(c.gains) - 1)
        self._gain = Gain

    @get("gainmin")
    def gainmin(self) -> int:
        self._require(self.config.gain_mode == "value", "GainMin", "the camera is not in gain value mode (GainMin/GainMax)")
        return self.config.gain_min

    @get("gainmax")
    def gainmax(self) -> int:
        self._require(self.config.gain_mode == "value", "GainMax", "the camera is not in gain value mode (GainMin/GainMax)")
        return self.config.gain_max

    @get("gains")
    def gains(self) -> list[str]:
        self._require(self.config.gain_mode == "index", "Gains", "the camera is not in gain index mode")
        return list(self.config.gains)

    @get("offset")
    def get_offset(self) -> int:
        self._require(self.config.offset_mode != "none", "Offset", "this camera has no offset control")
        return self._offset

    @put("offset", Offset=int)
    def put_offset(self, Offset: int) -> None:
        c = self.config
        self._require(c.offset_mode != "none", "Offset", "this camera has no offset control")
        if c.offset_mode == "value":
            check_range("Offset", Offset, c.offset_min, c.offset_max)
        else:
            check_range("Offset", Offset, 0, len(c.offsets) - 1)
        self._offset = Offset

    @get("offsetmin")
    def offsetmin(self) -> int:
        self._require(self.config.offset_mode == "value", "OffsetMin", "the camera is not in offset value mode (OffsetMin/OffsetMax)")
        return self.config.offset_min

    @get("offsetmax")
    def offsetmax(self) -> int:
        self._require(self.config.offset_mode == "value", "OffsetMax", "the camera is not in offset value mode (OffsetMin/OffsetMax)")
        return self.config.offset_max

    @get("offsets")
    def offsets(self) -> list[str]:
        self._require(self.config.offset_mode == "index", "Offsets", "the camera is not in offset index mode")
        return list(self.config.offsets)

    @get("readoutmode")
    def get_readoutmode(self) -> int:
        self._require(not self.config.can_fast_readout, "ReadoutMode", "this camera uses FastReadout")
        return self._readout_mode

    @put("readoutmode", ReadoutMode=int)
    def put_readoutmode(self, ReadoutMode: int) -> None:
        self._require(not self.config.can_fast_readout, "ReadoutMode", "this camera uses FastReadout")
        check_range("ReadoutMode", ReadoutMode, 0, len(self.config.readout_modes) - 1)
        self._readout_mode = ReadoutMode

    @get("readoutmodes")
    def readoutmodes(self) -> list[str]:
        self._require(not self.config.can_fast_readout, "ReadoutModes", "this camera uses FastReadout")
        return list(self.config.readout_modes)

    @get("fastreadout")
    def get_fastreadout(self) -> bool:
        self._require(self.config.can_fast_readout, "FastReadout", "CanFastReadout is False")
        return self._fast_readout

    @put("fastreadout", FastReadout=bool)
    def put_fastreadout(self, FastReadout: bool) -> None:
        self._require(self.config.can_fast_readout, "FastReadout", "CanFastReadout is False")
        self._fast_readout = FastReadout

    @get("subexposureduration")
    def get_subexposureduration(self) -> float:
        self._require(self.config.supports_sub_exposure, "SubExposureDuration", "this camera takes no sub-exposures")
        return self._sub_exposure

    @put("subexposureduration", SubExposureDuration=float)
    def put_subexposureduration(self, SubExposureDuration: float) -> None:
        c = self.config
        self._require(c.supports_sub_exposure, "SubExposureDuration", "this camera takes no sub-exposures")
        if not math.isfinite(SubExposureDuration) or SubExposureDuration <= 0:
            raise InvalidValue(f"SubExposureDuration {SubExposureDuration} must be greater than 0")
        check_range("SubExposureDuration", SubExposureDuration, max(c.exposure_min_s, 1e-9), c.exposure_max_s)
        self._sub_exposure = SubExposureDuration

    # -- cooler ---------------------------------------------------------------------------------

    def _cooler_target(self) -> float:
        """Where the sensor temperature is heading: the setpoint if reachable, else the cooler's limit."""
        if not self._cooler_on or self._cooler_fault:
            return self._ambient
        return max(self._setpoint, self._ambient - self.config.cooler_max_delta_c)

    def _temperature(self, now: float | None = None) -> float:
        now = self.clock.now() if now is None else now
        target = self._cooler_target()
        decay = math.exp(-max(0.0, now - self._anchor_time) / self.config.cooler_time_constant_s)
        return target + (self._anchor_temp - target) * decay

    def _retarget(self, change: Callable[[], None]) -> None:
        """Apply a change to the cooler's inputs, continuing from the present temperature."""
        now = self.clock.now()
        self._anchor_temp = self._temperature(now)
        self._anchor_time = now
        change()

    def _cooler_power(self) -> float:
        if not self._cooler_on:
            return 0.0
        if self._cooler_fault:
            return 100.0
        span = self.config.cooler_max_delta_c
        target = self._cooler_target()
        holding = (self._ambient - target) / span  # what keeps the sensor at the target
        pulling = (self._temperature() - target) / span  # extra while still cooling down
        return round(max(0.0, min(100.0, 100.0 * (holding + 2.0 * pulling))), 2)

    def _need_cooler(self, member: str) -> None:
        self._require(self.config.can_set_ccd_temperature, member, "this camera has no regulated cooler")

    @get("ccdtemperature")
    def ccdtemperature(self) -> float:
        return round(self._temperature(), 3)

    @get("heatsinktemperature")
    def heatsinktemperature(self) -> float:
        self._need_cooler("HeatSinkTemperature")
        # The hot side of the cooler runs a little above ambient while it works.
        return round(self._ambient + 0.05 * self._cooler_power(), 3)

    @get("cooleron")
    def get_cooleron(self) -> bool:
        self._need_cooler("CoolerOn")
        return self._cooler_on

    @put("cooleron", CoolerOn=bool)
    def put_cooleron(self, CoolerOn: bool) -> None:
        self._need_cooler("CoolerOn")
        self._retarget(lambda: setattr(self, "_cooler_on", CoolerOn))

    @get("coolerpower")
    def coolerpower(self) -> float:
        self._require(self.config.can_get_cooler_power, "CoolerPower", "CanGetCoolerPower is False")
        return self._cooler_power()

    @get("setccdtemperature")
    def get_setccdtemperature(self) -> float:
        self._need_cooler("SetCCDTemperature")
        return self._setpoint

    @put("setccdtemperature", SetCCDTemperature=float)
    def put_setccdtemperature(self, SetCCDTemperature: float) -> None:
        self._need_cooler("SetCCDTemperature")
        check_range("SetCCDTemperature", SetCCDTemperature, self.config.setpoint_min_c, self.config.setpoint_max_c)
        self._retarget(lambda: setattr(self, "_setpoint", SetCCDTemperature))

    # -- guiding --------------------------------------------------------------------------------

    @put("pulseguide", Direction=int, Duration=int)
    def pulseguide(self, Direction: int, Duration: int) -> None:
        self._require(self.config.can_pulse_guide, "PulseGuide", "CanPulseGuide is False")
        if Direction not in (0, 1, 2, 3):
            raise InvalidValue(f"PulseGuide: Direction {Direction} is not 0 (North), 1 (South), 2 (East) or 3 (West)")
        check_range("PulseGuide Duration", Duration, 0, 3_600_000)
        self._guide_until = self.clock.now() + Duration / 1000.0

    @get("ispulseguiding")
    def ispulseguiding(self) -> bool:
        self._require(self.config.can_pulse_guide, "IsPulseGuiding", "CanPulseGuide is False")
        return self.clock.now() < self._guide_until

    # -- state for DeviceState and the control API ----------------------------------------------

    def operational_state(self) -> dict[str, Any]:
        # ImageReady raises a DriverException after a failed exposure; DeviceState leaves it out.
        out: dict[str, Any] = {}
        for name in self.state_names:
            member = self.members[("GET", name.lower())]
            try:
                out[name] = getattr(self, member.attr)()
            except AscomError:
                continue
        return out

    def extra_state(self) -> dict[str, Any]:
        return {
            "ReadoutStuck": self._readout_stuck,
            "ExposureFails": self._exposure_fails,
            "CoolerFault": self._cooler_fault,
            "AmbientTemperature": self._ambient,
            "ExposureCount": self._exposure_count,
        }

    def _set_readout_stuck(self, value: bool) -> None:
        # Freeze the phase first, so a readout that ended while stuck completes only when released.
        self._phase()
        self._readout_stuck = value

    def state_setters(self) -> dict[str, tuple[type, Callable[[Any], None]]]:
        setters = super().state_setters()
        setters["ReadoutStuck"] = (bool, self._set_readout_stuck)
        setters["ExposureFails"] = (bool, lambda v: setattr(self, "_exposure_fails", v))
        setters["CoolerFault"] = (bool, lambda v: self._retarget(lambda: setattr(self, "_cooler_fault", v)))
        setters["AmbientTemperature"] = (float, lambda v: self._retarget(lambda: setattr(self, "_ambient", v)))
        return setters
