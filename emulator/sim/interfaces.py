"""Which Alpaca members each interface version of each device type has: the one table the router uses.

A device serves the members of its ``interface_version`` (default: the latest) and no others; a
member a later version introduced is an unknown member to an older device, answered with HTTP 400
as the Alpaca reference (section 2.5.2) says of any member that "is not a valid command" of the
device. OmniSim instead answers such a call with a DriverException (HTTP 200); we follow the
reference on purpose (README, "Replace OmniSim in CI").

Sources: the version in which ASCOM introduced each member (the ASCOM Library's
``DeviceCapabilities`` table, which OmniSim itself consults, checked against the OpenAPI file's
"ICameraV3 and later", "ISwitchV3 and later", "ICoverCalibratorV2 and later" and "Platform 7
onward" markings by ``tests/test_interfaces.py``). Where they differ, the interface definitions win:
Camera ExposureMax/ExposureMin/ExposureResolution/FastReadout are ICameraV2 members (the
``DeviceCapabilities`` table says 3); Switch CanAsync is ISwitchV3 (absent from that table).

Two members are not simply "introduced": IFocuserV1 has ``Link`` where later focusers have
``Connected`` (Link is served for focuser versions 1 to 3, as OmniSim serves it; the OpenAPI file,
written for Platform 7, has no such path); and Platform 7 (Connect, Connecting, Disconnect,
DeviceState) arrived with a different version number for each type (:data:`PLATFORM7`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Iterable

#: The newest interface version of each type (what a device serves unless configured otherwise).
LATEST: dict[str, int] = {
    "camera": 4,
    "covercalibrator": 2,
    "dome": 3,
    "filterwheel": 3,
    "focuser": 4,
    "observingconditions": 2,
    "rotator": 4,
    "safetymonitor": 3,
    "switch": 3,
    "telescope": 4,
}

#: The first interface version of each type that has the Platform 7 members.
PLATFORM7: dict[str, int] = dict(LATEST)

#: The members every type gained with Platform 7 ("Platform 7 onward" in the OpenAPI file).
PLATFORM7_MEMBERS = ("connect", "connecting", "devicestate", "disconnect")

_COMMON_V1 = "action commandblind commandbool commandstring connected description driverinfo driverversion interfaceversion name supportedactions"

#: type -> {version: members that version introduced (besides the Platform 7 ones)}.
_INTRODUCED: dict[str, dict[int, str]] = {
    "camera": {
        1: "abortexposure binx biny camerastate cameraxsize cameraysize canabortexposure canasymmetricbin "
        "cangetcoolerpower canpulseguide cansetccdtemperature canstopexposure ccdtemperature connected cooleron "
        "coolerpower description electronsperadu fullwellcapacity hasshutter heatsinktemperature imagearray "
        "imagearrayvariant imageready ispulseguiding lastexposureduration lastexposurestarttime maxadu maxbinx "
        "maxbiny numx numy pixelsizex pixelsizey pulseguide setccdtemperature startexposure startx starty stopexposure",
        2: "action commandblind commandbool commandstring bayeroffsetx bayeroffsety canfastreadout driverinfo "
        "driverversion exposuremax exposuremin exposureresolution fastreadout gain gainmax gainmin gains "
        "interfaceversion name percentcompleted readoutmode readoutmodes sensorname sensortype supportedactions",
        3: "offset offsetmax offsetmin offsets subexposureduration",
    },
    "covercalibrator": {
        1: f"{_COMMON_V1} brightness calibratoroff calibratoron calibratorstate closecover coverstate haltcover "
        "maxbrightness opencover",
        2: "calibratorchanging covermoving",
    },
    "dome": {
        1: "abortslew altitude athome atpark azimuth canfindhome canpark cansetaltitude cansetazimuth cansetpark "
        "cansetshutter canslave cansyncazimuth closeshutter commandblind commandbool commandstring connected "
        "description driverinfo driverversion findhome interfaceversion name openshutter park setpark "
        "shutterstatus slaved slewing slewtoaltitude slewtoazimuth synctoazimuth",
        2: "action supportedactions",
    },
    "filterwheel": {
        1: "connected focusoffsets names position",
        2: "action commandblind commandbool commandstring description driverinfo driverversion interfaceversion "
        "name supportedactions",
    },
    "focuser": {
        1: "absolute halt ismoving link maxincrement maxstep move position stepsize tempcomp tempcompavailable temperature",
        2: "action commandblind commandbool commandstring connected description driverinfo driverversion "
        "interfaceversion name supportedactions",
    },
    "observingconditions": {
        1: f"{_COMMON_V1} averageperiod cloudcover dewpoint humidity pressure rainrate refresh sensordescription "
        "skybrightness skyquality skytemperature starfwhm temperature timesincelastupdate winddirection windgust windspeed",
    },
    "rotator": {
        1: "connected halt ismoving move moveabsolute position reverse stepsize targetposition",
        2: "action canreverse commandblind commandbool commandstring description driverinfo driverversion "
        "interfaceversion name supportedactions",
        3: "mechanicalposition movemechanical sync",
    },
    "safetymonitor": {
        1: f"{_COMMON_V1} issafe",
    },
    "switch": {
        1: "connected description driverinfo driverversion getswitch getswitchname interfaceversion maxswitch name setswitch",
        2: "action canwrite commandblind commandbool commandstring getswitchdescription getswitchvalue maxswitchvalue "
        "minswitchvalue setswitchname setswitchvalue supportedactions switchstep",
        3: "canasync cancelasync setasync setasyncvalue statechangecomplete",
    },
    "telescope": {
        1: "abortslew alignmentmode altitude aperturediameter azimuth canfindhome canpark canpulseguide cansetpark "
        "cansettracking canslew canslewasync cansync canunpark commandblind commandbool commandstring connected "
        "declination declinationrate description driverinfo findhome focallength name park pulseguide "
        "rightascension rightascensionrate setpark siderealtime siteelevation sitelatitude sitelongitude slewing "
        "slewsettletime slewtocoordinates slewtocoordinatesasync slewtotarget slewtotargetasync synctocoordinates "
        "synctotarget targetdeclination targetrightascension tracking unpark utcdate",
        2: "aperturearea athome atpark axisrates canmoveaxis cansetdeclinationrate cansetguiderates cansetpierside "
        "cansetrightascensionrate canslewaltaz canslewaltazasync cansyncaltaz destinationsideofpier doesrefraction "
        "driverversion equatorialsystem guideratedeclination guideraterightascension interfaceversion ispulseguiding "
        "moveaxis sideofpier slewtoaltaz slewtoaltazasync synctoaltaz trackingrate trackingrates",
        3: "action supportedactions",
    },
}

#: type -> {member: the first version that no longer has it}.
REMOVED: dict[str, dict[str, int]] = {"focuser": {"link": 4}}


def _build() -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for device_type, versions in _INTRODUCED.items():
        members: dict[str, int] = {}
        for version, names in versions.items():
            for name in names.split():
                if name in members:
                    raise ValueError(f"{device_type}.{name} is listed at versions {members[name]} and {version}")
                members[name] = version
        for name in PLATFORM7_MEMBERS:
            members[name] = PLATFORM7[device_type]
        table[device_type] = members
    return table


#: type -> {member (lowercase, as in the URL): the interface version that introduced it}.
INTRODUCED: dict[str, dict[str, int]] = _build()


def versions(device_type: str) -> range:
    """Every interface version ``device_type`` has had: 1 to the latest."""
    return range(1, LATEST[device_type] + 1)


def has_member(device_type: str, member: str, version: int) -> bool:
    """True when interface ``version`` of ``device_type`` has ``member``."""
    first = INTRODUCED[device_type].get(member)
    if first is None or version < first:
        return False
    gone = REMOVED.get(device_type, {}).get(member)
    return gone is None or version < gone


def members_at(device_type: str, version: int) -> frozenset[str]:
    """The members of interface ``version`` of ``device_type``."""
    return frozenset(m for m in INTRODUCED[device_type] if has_member(device_type, m, version))


_CAMEL = {
    "camera": "Camera", "covercalibrator": "CoverCalibrator", "dome": "Dome", "filterwheel": "FilterWheel",
    "focuser": "Focuser", "observingconditions": "ObservingConditions", "rotator": "Rotator",
    "safetymonitor": "SafetyMonitor", "switch": "Switch", "telescope": "Telescope",
}


def interface_name(device_type: str, version: int) -> str:
    """``ICameraV3``, as ASCOM names an interface version."""
    return f"I{_CAMEL[device_type]}V{version}"


def absent_reason(device_type: str, member: str, version: int) -> str:
    """Why ``member`` is not a member of this version (for the 400 text), or '' if it is unknown."""
    first = INTRODUCED.get(device_type, {}).get(member)
    if first is None:
        return ""
    gone = REMOVED.get(device_type, {}).get(member)
    if gone is not None and version >= gone:
        return f"{interface_name(device_type, gone)} and later have no {member}"
    return f"{member} was introduced in {interface_name(device_type, first)}; this device is {interface_name(device_type, version)}"


@functools.cache
def routes_for(cls: type, version: int) -> tuple[dict, dict]:
    """``(routes, route_verbs)`` of a device class at ``version``: its ``members`` and
    ``member_verbs`` cut down to that version's members (built once per class and version)."""
    present = members_at(cls.device_type, version)
    routes = {key: m for key, m in cls.members.items() if key[1] in present}
    verbs: dict[str, set[str]] = {}
    for verb, name in routes:
        verbs.setdefault(name, set()).add(verb)
    return routes, {name: frozenset(v) for name, v in verbs.items()}


# -- options that only some versions allow -------------------------------------------------------


@dataclass(frozen=True)
class OptionRule:
    """A device option value that an interface version cannot have.

    ``applies(value)`` says whether the configured value is one the rule is about; ``allowed(version)``
    whether a device of that version may have it; ``why`` is said in the error.
    """

    device_type: str
    option: str
    applies: Callable[[Any], bool]
    allowed: Callable[[int], bool]
    why: str


def _needs(device_type: str, option: str, member: str, applies: Callable[[Any], bool]) -> OptionRule:
    first = INTRODUCED[device_type][member]
    return OptionRule(device_type, option, applies, lambda v, f=first: v >= f,
                      f"it needs {member}, which {interface_name(device_type, first)} introduced")


def _on(value: Any) -> bool:
    return bool(value)


OPTION_RULES: tuple[OptionRule, ...] = (
    _needs("camera", "gain_mode", "gain", lambda v: v != "none"),
    _needs("camera", "offset_mode", "offset", lambda v: v != "none"),
    _needs("camera", "can_fast_readout", "fastreadout", _on),
    _needs("camera", "supports_sub_exposure", "subexposureduration", _on),
    _needs("camera", "readout_modes", "readoutmodes", lambda v: True),
    _needs("camera", "sensor", "sensortype", lambda v: v != "mono"),
    _needs("telescope", "axis_rates", "axisrates", lambda v: v is not None),
    _needs("telescope", "tracking_rates", "trackingrates", lambda v: True),
    _needs("telescope", "can_move_axis", "moveaxis", _on),
    _needs("switch", "switches", "setasync", lambda v: any(s.can_async for s in v)),
    _needs("switch", "switches", "getswitchvalue", lambda v: any(s.kind == "analogue" for s in v)),
    _needs("switch", "can_rename", "setswitchname", _on),
    OptionRule("rotator", "can_reverse", lambda v: v is False, lambda v: v < 3,
               "IRotatorV3 and later require CanReverse True"),
    OptionRule("focuser", "tempcomp_blocks_move", lambda v: v is True, lambda v: v < 3,
               "IFocuserV3 and later allow Move while TempComp is on"),
    OptionRule("focuser", "tempcomp_blocks_move", lambda v: v is False, lambda v: v >= 3,
               "IFocuserV1 and IFocuserV2 refuse Move while TempComp is on"),
)


def option_conflicts(device_type: str, version: int, options: dict[str, Any], explicit: Iterable[str]) -> list[str]:
    """One message per explicitly set option that interface ``version`` of ``device_type`` cannot have."""
    given = set(explicit)
    out = []
    for rule in OPTION_RULES:
        if rule.device_type != device_type or rule.option not in given:
            continue
        value = options[rule.option]
        if rule.applies(value) and not rule.allowed(version):
            ok = [str(v) for v in versions(device_type) if rule.allowed(v)]
            shown = "(as configured)" if isinstance(value, (list, dict)) else f"= {value!r}"
            out.append(
                f"{rule.option} {shown} contradicts interface_version {version}: {rule.why} "
                f"(interface versions that allow it: {', '.join(ok)})"
            )
    return out
