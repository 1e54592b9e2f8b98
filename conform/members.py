"""What an Alpaca server must answer: device type -> member -> verb, parameters, value kind.

Our own compact table of the Alpaca device API (the OpenAPI response shapes reduced to the
facts a checker needs), so the checker works from a plain install. A test
(``tests/test_conform_members.py``) derives the same rows from the official OpenAPI file and
fails when the two drift apart.

One row per ``(verb, member)``::

    GET binx                 -> int[1,] =        value kind, then markers
    PUT binx   BinX:int[1,]  -> none             parameters name:kind, in spec order

Value and parameter kinds: ``bool int float str datetime fitsdate none list[K] axisrates
devicestate imagearray``, optionally with a range ``[lo,hi]`` (either end may be empty) or an
enumeration ``{a,b,c}``. Markers:

- ``@N``: the member exists from interface version N on (absent: version 1). Platform 7 common
  members take their version from :data:`PLATFORM7`; so a device reporting an older
  InterfaceVersion is not expected to have them.
- ``=``: a connected device must answer this GET with a value, never an ASCOM error.
- ``!``: a status member (polled while an operation runs); ConformU flags status members that
  take longer than 0.1 s, others longer than 1 s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

DEVICE_TYPES = (
    "camera",
    "covercalibrator",
    "dome",
    "filterwheel",
    "focuser",
    "observingconditions",
    "rotator",
    "safetymonitor",
    "switch",
    "telescope",
)

#: Interface version of each type at Platform 7 (Connect, Disconnect, Connecting, DeviceState).
PLATFORM7 = {
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
LATEST = dict(PLATFORM7)
_PLATFORM7_MEMBERS = ("connect", "disconnect", "connecting", "devicestate")

#: Common members that some types only gained after their first interface version.
_COMMON_SINCE = {
    "camera": dict.fromkeys(
        ("action", "commandblind", "commandbool", "commandstring", "driverinfo", "driverversion", "interfaceversion", "name", "supportedactions"), 2
    ),
    "dome": dict.fromkeys(("action", "supportedactions"), 2),
    "filterwheel": dict.fromkeys(
        ("action", "commandblind", "commandbool", "commandstring", "description", "driverinfo", "driverversion", "interfaceversion", "name", "supportedactions"), 2
    ),
    "focuser": dict.fromkeys(
        ("action", "commandblind", "commandbool", "commandstring", "connected", "description", "driverinfo", "driverversion", "interfaceversion", "name", "supportedactions"), 2
    ),
    "rotator": dict.fromkeys(
        ("action", "commandblind", "commandbool", "commandstring", "description", "driverinfo", "driverversion", "interfaceversion", "name", "supportedactions"), 2
    ),
    "switch": dict.fromkeys(("action", "commandblind", "commandbool", "commandstring", "supportedactions"), 2),
    "telescope": {"action": 3, "supportedactions": 3, "driverversion": 2, "interfaceversion": 2},
}

#: Common members every connected device answers with a value.
_COMMON_REQUIRED = ("connected", "description", "driverinfo", "driverversion", "interfaceversion", "name", "supportedactions", "connecting", "devicestate")
_COMMON_STATUS = ("connected", "connecting", "devicestate")

_TABLE = {
    "*": """
        PUT action                 Action:str Parameters:str                -> str
        PUT commandblind           Command:str Raw:bool                     -> none
        PUT commandbool            Command:str Raw:bool                     -> bool
        PUT commandstring          Command:str Raw:bool                     -> str
        PUT connect                                                         -> none
        GET connected                                                       -> bool
        PUT connected              Connected:bool                           -> none
        GET connecting                                                      -> bool
        GET description                                                     -> str
        GET devicestate                                                     -> devicestate
        PUT disconnect                                                      -> none
        GET driverinfo                                                      -> str
        GET driverversion                                                   -> str
        GET interfaceversion                                                -> int
        GET name                                                            -> str
        GET supportedactions                                                -> list[str]
    """,
    "camera": """
        GET bayeroffsetx                                                    -> int @2
        GET bayeroffsety                                                    -> int @2
        GET binx                                                            -> int[1,] =
        PUT binx                   BinX:int[1,]                             -> none
        GET biny                                                            -> int[1,] =
        PUT biny                   BinY:int[1,]                             -> none
        GET camerastate                                                     -> int{0,1,2,3,4,5} = !
        GET cameraxsize                                                     -> int =
        GET cameraysize                                                     -> int =
        GET canabortexposure                                                -> bool =
        GET canasymmetricbin                                                -> bool =
        GET canfastreadout                                                  -> bool @2 =
        GET cangetcoolerpower                                               -> bool =
        GET canpulseguide                                                   -> bool =
        GET cansetccdtemperature                                            -> bool =
        GET canstopexposure                                                 -> bool =
        GET ccdtemperature                                                  -> float !
        GET cooleron                                                        -> bool
        PUT cooleron               CoolerOn:bool                            -> none
        GET coolerpower                                                     -> float[0,100] !
        GET electronsperadu                                                 -> float =
        GET exposuremax                                                     -> float @3 =
        GET exposuremin                                                     -> float @3 =
        GET exposureresolution                                              -> float @3 =
        GET fastreadout                                                     -> bool @3
        PUT fastreadout            FastReadout:bool                         -> none @3
        GET fullwellcapacity                                                -> float =
        GET gain                                                            -> int @2
        PUT gain                   Gain:int                                 -> none @2
        GET gainmax                                                         -> int @2
        GET gainmin                                                         -> int @2
        GET gains                                                           -> list[str] @2
        GET hasshutter                                                      -> bool =
        GET heatsinktemperature                                             -> float !
        GET imagearray                                                      -> imagearray
        GET imagearrayvariant                                               -> imagearray
        GET imageready                                                      -> bool = !
        GET ispulseguiding                                                  -> bool !
        GET lastexposureduration                                            -> float
        GET lastexposurestarttime                                           -> fitsdate
        GET maxadu                                                          -> int =
        GET maxbinx                                                         -> int[1,] =
        GET maxbiny                                                         -> int[1,] =
        GET numx                                                            -> int =
        PUT numx                   NumX:int                                 -> none
        GET numy                                                            -> int =
        PUT numy                   NumY:int                                 -> none
        GET offset                                                          -> int @3
        PUT offset                 Offset:int                               -> none @3
        GET offsetmax                                                       -> int @3
        GET offsetmin                                                       -> int @3
        GET offsets                                                         -> list[str] @3
        GET percentcompleted                                                -> int[0,100] @2 !
        GET pixelsizex                                                      -> float =
        GET pixelsizey                                                      -> float =
        GET readoutmode                                                     -> int @2
        PUT readoutmode            ReadoutMode:int                          -> none @2
        GET readoutmodes                                                    -> list[str] @2
        GET sensorname                                                      -> str @2
        GET sensortype                                                      -> int{0,1,2,3,4,5} @2
        GET setccdtemperature                                               -> float
        PUT setccdtemperature      SetCCDTemperature:float                  -> none
        GET startx                                                          -> int =
        PUT startx                 StartX:int                               -> none
        GET starty                                                          -> int =
        PUT starty                 StartY:int                               -> none
        GET subexposureduration                                             -> float @3
        PUT subexposureduration    SubExposureDuration:float                -> none @3
        PUT abortexposure                                                   -> none
        PUT pulseguide             Direction:int{0,1,2,3} Duration:int      -> none
        PUT startexposure          Duration:float Light:bool                -> none
        PUT stopexposure                                                    -> none
    """,
    "covercalibrator": """
        GET brightness                                                      -> int !
        GET calibratorchanging                                              -> bool @2 = !
        GET calibratorstate                                                 -> int{0,1,2,3,4,5} = !
        GET covermoving                                                     -> bool @2 = !
        GET coverstate                                                      -> int{0,1,2,3,4,5} = !
        GET maxbrightness                                                   -> int
        PUT calibratoroff                                                   -> none
        PUT calibratoron           Brightness:int                           -> none
        PUT closecover                                                      -> none
        PUT haltcover                                                       -> none
        PUT opencover                                                       -> none
    """,
    "dome": """
        GET altitude                                                        -> float !
        GET athome                                                          -> bool !
        GET atpark                                                          -> bool !
        GET azimuth                                                         -> float !
        GET canfindhome                                                     -> bool =
        GET canpark                                                         -> bool =
        GET cansetaltitude                                                  -> bool =
        GET cansetazimuth                                                   -> bool =
        GET cansetpark                                                      -> bool =
        GET cansetshutter                                                   -> bool =
        GET canslave                                                        -> bool =
        GET cansyncazimuth                                                  -> bool =
        GET shutterstatus                                                   -> int{0,1,2,3,4} !
        GET slaved                                                          -> bool
        PUT slaved                 Slaved:bool                              -> none
        GET slewing                                                         -> bool = !
        PUT abortslew                                                       -> none
        PUT closeshutter                                                    -> none
        PUT findhome                                                        -> none
        PUT openshutter                                                     -> none
        PUT park                                                            -> none
        PUT setpark                                                         -> none
        PUT slewtoaltitude         Altitude:float                           -> none
        PUT slewtoazimuth          Azimuth:float                            -> none
        PUT synctoazimuth          Azimuth:float                            -> none
    """,
    "filterwheel": """
        GET focusoffsets                                                    -> list[int] =
        GET names                                                           -> list[str] =
        GET position                                                        -> int = !
        PUT position               Position:int                             -> none
    """,
    "focuser": """
        GET absolute                                                        -> bool =
        GET ismoving                                                        -> bool = !
        GET maxincrement                                                    -> int =
        GET maxstep                                                         -> int =
        GET position                                                        -> int !
        GET stepsize                                                        -> float
        GET tempcomp                                                        -> bool =
        PUT tempcomp               TempComp:bool                            -> none
        GET tempcompavailable                                               -> bool =
        GET temperature                                                     -> float !
        PUT halt                                                            -> none
        PUT move                   Position:int                             -> none
    """,
    "observingconditions": """
        GET averageperiod                                                   -> float =
        PUT averageperiod          AveragePeriod:float                      -> none
        GET cloudcover                                                      -> float[0,100] !
        GET dewpoint                                                        -> float !
        GET humidity                                                        -> float !
        GET pressure                                                        -> float !
        GET rainrate                                                        -> float !
        GET skybrightness                                                   -> float !
        GET skyquality                                                      -> float !
        GET skytemperature                                                  -> float !
        GET starfwhm                                                        -> float !
        GET temperature                                                     -> float !
        GET winddirection                                                   -> float !
        GET windgust                                                        -> float !
        GET windspeed                                                       -> float !
        PUT refresh                                                         -> none
        GET sensordescription      SensorName:str                           -> str
        GET timesincelastupdate    SensorName:str                           -> float
    """,
    "rotator": """
        GET canreverse                                                      -> bool @2 =
        GET ismoving                                                        -> bool = !
        GET mechanicalposition                                              -> float @3 = !
        GET position                                                        -> float = !
        GET reverse                                                         -> bool
        PUT reverse                Reverse:bool                             -> none
        GET stepsize                                                        -> float
        GET targetposition                                                  -> float =
        PUT halt                                                            -> none
        PUT move                   Position:float                           -> none
        PUT moveabsolute           Position:float                           -> none
        PUT movemechanical         Position:float                           -> none @3
        PUT sync                   Position:float                           -> none @3
    """,
    "safetymonitor": """
        GET issafe                                                          -> bool = !
    """,
    "switch": """
        GET maxswitch                                                       -> int =
        GET canasync               Id:int[0,]                               -> bool @3 =
        GET canwrite               Id:int[0,]                               -> bool @2 =
        GET getswitch              Id:int[0,]                               -> bool = !
        GET getswitchdescription   Id:int[0,]                               -> str @2 =
        GET getswitchname          Id:int[0,]                               -> str =
        GET getswitchvalue         Id:int[0,]                               -> float @2 = !
        GET minswitchvalue         Id:int[0,]                               -> float @2 =
        GET maxswitchvalue         Id:int[0,]                               -> float @2 =
        PUT setasync               Id:int State:bool                        -> none @3
        PUT setasyncvalue          Id:int Value:float                       -> none @3
        PUT setswitch              Id:int State:bool                        -> none
        PUT setswitchname          Id:int Name:str                          -> none @2
        PUT setswitchvalue         Id:int Value:float                       -> none @2
        GET statechangecomplete    Id:int[0,]                               -> bool @3 !
        GET switchstep             Id:int[0,]                               -> float @2 =
    """,
    "telescope": """
        GET alignmentmode                                                   -> int{0,1,2} =
        GET altitude                                                        -> float !
        GET aperturearea                                                    -> float @2
        GET aperturediameter                                                -> float
        GET athome                                                          -> bool @2 = !
        GET atpark                                                          -> bool @2 = !
        GET azimuth                                                         -> float !
        GET canfindhome                                                     -> bool =
        GET canpark                                                         -> bool =
        GET canpulseguide                                                   -> bool =
        GET cansetdeclinationrate                                           -> bool @2 =
        GET cansetguiderates                                                -> bool @2 =
        GET cansetpark                                                      -> bool =
        GET cansetpierside                                                  -> bool @2 =
        GET cansetrightascensionrate                                          -> bool @2 =
        GET cansettracking                                                  -> bool =
        GET canslew                                                         -> bool =
        GET canslewaltaz                                                    -> bool @2 =
        GET canslewaltazasync                                               -> bool @2 =
        GET canslewasync                                                    -> bool =
        GET cansync                                                         -> bool =
        GET cansyncaltaz                                                    -> bool @2 =
        GET canunpark                                                       -> bool =
        GET declination                                                     -> float = !
        GET declinationrate                                                 -> float =
        PUT declinationrate        DeclinationRate:float                    -> none
        GET doesrefraction                                                  -> bool @2 =
        PUT doesrefraction         DoesRefraction:bool                      -> none @2
        GET equatorialsystem                                                -> int{0,1,2,3,4} @2 =
        GET focallength                                                     -> float
        GET guideratedeclination                                            -> float @2
        PUT guideratedeclination   GuideRateDeclination:float               -> none @2
        GET guideraterightascension                                          -> float @2
        PUT guideraterightascension GuideRateRightAscension:float            -> none @2
        GET ispulseguiding                                                  -> bool @2 !
        GET rightascension                                                  -> float[0,23.9999999999] = !
        GET rightascensionrate                                              -> float =
        PUT rightascensionrate     RightAscensionRate:float                 -> none
        GET sideofpier                                                      -> int{0,1,-1} @2 !
        PUT sideofpier             SideOfPier:int{0,1,-1}                   -> none @2
        GET siderealtime                                                    -> float = !
        GET siteelevation                                                   -> float
        PUT siteelevation          SiteElevation:float                      -> none
        GET sitelatitude                                                    -> float
        PUT sitelatitude           SiteLatitude:float                       -> none
        GET sitelongitude                                                   -> float
        PUT sitelongitude          SiteLongitude:float                      -> none
        GET slewing                                                         -> bool = !
        GET slewsettletime                                                  -> int
        PUT slewsettletime         SlewSettleTime:int                       -> none
        GET targetdeclination                                               -> float[-90,90]
        PUT targetdeclination      TargetDeclination:float                  -> none
        GET targetrightascension                                            -> float
        PUT targetrightascension   TargetRightAscension:float               -> none
        GET tracking                                                        -> bool = !
        PUT tracking               Tracking:bool                            -> none
        GET trackingrate                                                    -> int{0,1,2,3} @2 =
        PUT trackingrate           TrackingRate:int{0,1,2,3}                -> none @2
        GET trackingrates                                                   -> list[int{0,1,2,3}] @2 =
        GET utcdate                                                         -> datetime = !
        PUT utcdate                UTCDate:datetime                         -> none
        PUT abortslew                                                       -> none
        GET axisrates              Axis:int{0,1,2}                          -> axisrates @2 =
        GET canmoveaxis            Axis:int{0,1,2}                          -> bool @2 =
        GET destinationsideofpier  RightAscension:float[0,23.9999999999] Declination:float[-90,90] -> int{0,1,-1} @2
        PUT findhome                                                        -> none
        PUT moveaxis               Axis:int{0,1,2} Rate:float               -> none @2
        PUT park                                                            -> none
        PUT pulseguide             Direction:int{0,1,2,3} Duration:int      -> none
        PUT setpark                                                         -> none
        PUT slewtoaltaz            Azimuth:float Altitude:float             -> none @2
        PUT slewtoaltazasync       Azimuth:float Altitude:float             -> none @2
        PUT slewtocoordinates      RightAscension:float[0,23.9999999999] Declination:float[-90,90] -> none
        PUT slewtocoordinatesasync RightAscension:float[0,23.9999999999] Declination:float[-90,90] -> none
        PUT slewtotarget                                                    -> none
        PUT slewtotargetasync                                               -> none
        PUT synctoaltaz            Azimuth:float Altitude:float             -> none @2
        PUT synctocoordinates      RightAscension:float[0,23.9999999999] Declination:float[-90,90] -> none
        PUT synctotarget                                                    -> none
        PUT unpark                                                          -> none
    """,
}


@dataclass(frozen=True)
class Kind:
    """A value kind: ``base`` plus an optional range or enumeration."""

    base: str
    item: "Kind | None" = None  # for list[...]
    low: float | None = None
    high: float | None = None
    choices: tuple[int, ...] | None = None
    text: str = ""

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Param:
    name: str
    kind: Kind


@dataclass(frozen=True)
class Member:
    """One ``(verb, member)`` of one device type."""

    device_type: str
    verb: str
    name: str
    params: tuple[Param, ...]
    value: Kind
    since: int = 1
    required: bool = False
    status: bool = False

    @property
    def is_property(self) -> bool:
        """A PUT that writes a property readable by GET of the same name with one parameter."""
        return self.verb == "PUT" and len(self.params) == 1 and self.params[0].name.lower() == self.name

    def __str__(self) -> str:
        return f"{self.verb} {self.name}"


BASES = ("bool", "int", "float", "str", "datetime", "fitsdate", "none", "axisrates", "devicestate", "imagearray")
_KIND = re.compile(r"(?P<base>[a-z]+)(?:\[(?P<item>[a-z]+)\])?(?:\[(?P<lo>[-\d.]*),(?P<hi>[-\d.]*)\]|\{(?P<enum>[-\d,]+)\})?\Z")


def parse_kind(text: str) -> Kind:
    """``int[1,]`` -> Kind; a ValueError names the text that is not a kind."""
    if text.startswith("list[") and text.endswith("]"):
        return Kind("list", item=parse_kind(text[5:-1]), text=text)
    m = _KIND.match(text)
    if m is None or m["item"] or m["base"] not in BASES:
        raise ValueError(f"not a value kind: {text!r}")
    lo = float(m["lo"]) if m["lo"] else None
    hi = float(m["hi"]) if m["hi"] else None
    enum = tuple(int(v) for v in m["enum"].split(",")) if m["enum"] else None
    return Kind(m["base"], low=lo, high=hi, choices=enum, text=text)


def _parse_row(device_type: str, row: str) -> Member:
    head, _, tail = row.partition("->")
    words = head.split()
    verb, name, params = words[0], words[1], words[2:]
    marks = tail.split()
    value = parse_kind(marks[0])
    since = next((int(m[1:]) for m in marks[1:] if m.startswith("@")), 1)
    parsed = tuple(Param(p.partition(":")[0], parse_kind(p.partition(":")[2])) for p in params)
    return Member(device_type, verb, name, parsed, value, since, "=" in marks[1:], "!" in marks[1:])


def _common(device_type: str, member: Member) -> Member:
    since = PLATFORM7[device_type] if member.name in _PLATFORM7_MEMBERS else _COMMON_SINCE.get(device_type, {}).get(member.name, 1)
    required = member.verb == "GET" and member.name in _COMMON_REQUIRED
    status = member.verb == "GET" and member.name in _COMMON_STATUS
    return Member(device_type, member.verb, member.name, member.params, member.value, since, required, status)


@lru_cache(maxsize=None)
def members(device_type: str) -> dict[tuple[str, str], Member]:
    """Every ``(verb, member)`` of ``device_type``, common members included, in table order."""
    if device_type not in DEVICE_TYPES:
        raise KeyError(f"unknown device type {device_type!r}; valid: {', '.join(DEVICE_TYPES)}")
    out: dict[tuple[str, str], Member] = {}
    for row in _TABLE["*"].strip().splitlines():
        m = _common(device_type, _parse_row(device_type, row))
        out[(m.verb, m.name)] = m
    for row in _TABLE[device_type].strip().splitlines():
        m = _parse_row(device_type, row)
        out[(m.verb, m.name)] = m
    return out


def expected_members(device_type: str, interface_version: int) -> list[Member]:
    """The members a device of this type and InterfaceVersion must have."""
    return [m for m in members(device_type).values() if m.since <= interface_version]


def member(device_type: str, verb: str, name: str) -> Member:
    return members(device_type)[(verb, name)]


def is_status_member(device_type: str, name: str) -> bool:
    m = members(device_type).get(("GET", name))
    return bool(m and m.status)


@lru_cache(maxsize=None)
def common_names() -> frozenset[str]:
    """Names of the members every device type has."""
    return frozenset(row.split()[1] for row in _TABLE["*"].strip().splitlines())
