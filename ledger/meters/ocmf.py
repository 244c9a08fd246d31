"""OCMF (Open Charge Metering Format) records: parse, verify, map readings (DESIGN §4.3).

An OCMF record is the text `OCMF|{payload JSON}|{signature JSON}` produced by EV chargers
under German calibration law. The signature covers the payload section *exactly as sent*
(the bytes between the first `OCMF|` and the last `|`): real devices emit spaces around
colons, numbers as padded strings and vendor fields, so the payload is never re-serialised,
and `OcmfRecord.raw` keeps the whole record verbatim for the log leaf, where any OCMF tool
can re-verify it.

Signatures are ECDSA with the curve and hash named in `SA` (default
`ECDSA-secp256r1-SHA256` when absent, as the specification says), over secp256r1,
secp256k1, secp384r1, brainpoolP256r1 and brainpoolP384r1. Both curve spellings seen in the
field are accepted (`brainpoolP256r1` as in RFC 5639, `brainpool256r1` as in the OCMF
specification's table). `SD` is DER, hex by default or base64 when `SE` says so.

Everything that can go wrong raises `OcmfError` with a machine-readable `reason` (the
ingestion API reports it per item); no cryptography or JSON exception leaks out.

This module is pure (no storage, no I/O).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from ledger import strict_json
from ledger.meters.readings import MAX_REGISTER_WH, METER_ID_PATTERN
from ledger.strict_json import JsonInputError

OcmfReason = Literal[
    "malformed",  # not `OCMF|{...}|{...}`, bad JSON, duplicate keys, wrong field types
    "too-large",  # more than MAX_OCMF_BYTES
    "unsupported-algorithm",  # SA is not ECDSA-<curve>-<SHA-2>, or SM is not DER
    "unsupported-curve",  # SA names a curve outside SUPPORTED_CURVES (e.g. secp192k1)
    "unsupported-encoding",  # SE is neither hex nor base64
    "missing-public-key",  # nothing to verify against
    "bad-public-key",  # the key bytes are neither SPKI DER nor a point on the SA curve
    "key-curve-mismatch",  # the key is on another curve than SA names
    "bad-signature-encoding",  # SD does not decode to a DER (or raw r‖s) ECDSA signature
    "bad-signature",  # well-formed, but does not verify: altered record or wrong key
    "bad-time",  # TM is not `YYYY-MM-DDThh:mm:ss,fff+hhmm F`
    "bad-value",  # RV is not a finite non-negative number in range
    "fractional-wh",  # RV converts to a non-integral number of Wh
    "missing-meter-id",  # neither MS nor GS holds a usable meter id
]

MAX_OCMF_BYTES = 16 * 1024
"""Real records are 0.5-3 KB. The bound keeps a leaf that embeds the record (as a JSON string,
where escaping can grow it) well below ledger.log.canonical.MAX_CANONICAL_BYTES."""

DEFAULT_SIGNATURE_ALGORITHM = "ECDSA-secp256r1-SHA256"
DER_MIME_TYPE = "application/x-der"
PREFIX = b"OCMF|"

# SA curve spelling -> (curve class, canonical name, field size in bytes).
_CURVES: dict[str, tuple[type[ec.EllipticCurve], str, int]] = {
    "secp256r1": (ec.SECP256R1, "secp256r1", 32),
    "secp256k1": (ec.SECP256K1, "secp256k1", 32),
    "secp384r1": (ec.SECP384R1, "secp384r1", 48),
    "brainpoolP256r1": (ec.BrainpoolP256R1, "brainpoolP256r1", 32),
    "brainpool256r1": (ec.BrainpoolP256R1, "brainpoolP256r1", 32),
    "brainpoolP384r1": (ec.BrainpoolP384R1, "brainpoolP384r1", 48),
    "brainpool384r1": (ec.BrainpoolP384R1, "brainpoolP384r1", 48),
}
SUPPORTED_CURVES: frozenset[str] = frozenset(_CURVES)
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512,
}
_SA_PATTERN = re.compile(r"^ECDSA-([A-Za-z0-9]+)-([A-Z0-9]+)$")
# TM: local time with milliseconds and UTC offset, then the clock status flag.
_TM_PATTERN = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2}),(\d{3})([+-])(\d{2})(\d{2}) ([UISR])$"
)
# OBIS "A-B:C.D.E[.F|*F]" as vendors write it ("1-b:1.8.0", "01-00:01.08.00.FF", ...).
_OBIS_PATTERN = re.compile(r"^[0-9A-Za-z]+-[0-9A-Za-z]+:(\d+)\.(\d+)\.")
_PAGINATION_PATTERN = re.compile(r"^([TF])(\d+)$")

TimeStatus = Literal["unknown", "informative", "synchronised", "relative"]
_TIME_STATUS: dict[str, TimeStatus] = {
    "U": "unknown",
    "I": "informative",
    "S": "synchronised",
    "R": "relative",
}
Register = Literal["import", "export", "other"]
_WH_PER_UNIT: dict[str, int] = {"Wh": 1, "kWh": 1000}


class OcmfError(ValueError):
    """An OCMF record was refused; `reason` is a stable machine-readable code."""

    def __init__(self, reason: OcmfReason, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason: OcmfReason = reason
        self.detail = message


@dataclass(frozen=True, slots=True)
class OcmfSignature:
    algorithm: str  # SA as given, or the default when SA is absent
    curve: str  # canonical curve name (brainpool spelt as in RFC 5639)
    hash_name: str  # "SHA256", ...
    encoding: Literal["hex", "base64"]
    data: bytes  # SD decoded from hex/base64: DER (or raw r‖s, see decode_signature_values)


@dataclass(frozen=True, slots=True)
class OcmfRecord:
    """A structurally valid OCMF record. Parsing does not verify; call `verify_ocmf`."""

    raw: bytes  # the whole record, verbatim: what the log leaf carries
    payload_bytes: bytes  # exactly the signed bytes
    payload: Mapping[str, Any]  # parsed payload; JSON numbers with a fraction are Decimal
    signature: OcmfSignature

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8")

    @property
    def meter_id(self) -> str:
        return ocmf_meter_id(self.payload)

    @property
    def pagination(self) -> tuple[str, int] | None:
        """`PG` as (kind, counter): "T" transaction or "F" fiscal; None if absent/odd.

        The counter increases per kind on the device, so ingestion can use it like `seq`."""
        match = _PAGINATION_PATTERN.fullmatch(str(self.payload.get("PG", "")))
        return (match.group(1), int(match.group(2))) if match else None


@dataclass(frozen=True, slots=True)
class OcmfReading:
    """One energy register value from `RD`, in the registry's integer-Wh terms."""

    meter: str
    time: datetime  # aware, in the record's own UTC offset, millisecond precision
    time_status: TimeStatus  # TM flag: only "synchronised" is a legally reliable clock
    transaction: str | None  # TX: B(egin), C(harging), X, E(nd), L, R, A, T, S ...
    obis: str  # RI as given
    register: Register  # import for OBIS C=1 D=8, export for C=2 D=8, else other
    wh: int
    status: str | None  # ST: "G" good, "E" error, ...


# --------------------------------------------------------------------------- parsing


def _json_object(text: bytes, what: str) -> dict[str, Any]:
    # Decimal keeps "0.2596" exactly; float would turn it into 0.25959999...
    try:
        value = strict_json.loads(text, exact_decimals=True)
    except JsonInputError as exc:
        raise OcmfError("malformed", f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise OcmfError("malformed", f"{what} is not a JSON object")
    return value


def _curve_and_hash(algorithm: str) -> tuple[str, str]:
    match = _SA_PATTERN.fullmatch(algorithm)
    if not match:
        raise OcmfError("unsupported-algorithm", f"SA {algorithm!r} is not ECDSA-<curve>-<hash>")
    curve, hash_name = match.groups()
    if curve not in _CURVES:
        raise OcmfError(
            "unsupported-curve",
            f"SA {algorithm!r}: curve {curve!r} is not one of {sorted(SUPPORTED_CURVES)}",
        )
    if hash_name not in _HASHES:
        raise OcmfError("unsupported-algorithm", f"SA {algorithm!r}: unsupported hash")
    return _CURVES[curve][1], hash_name


def _decode_sd(data: Any, encoding: str) -> bytes:
    if not isinstance(data, str) or not data:
        raise OcmfError("malformed", "SD must be a non-empty string")
    try:
        if encoding == "hex":
            return bytes.fromhex(data)
        return base64.b64decode(data, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise OcmfError("bad-signature-encoding", f"SD is not valid {encoding}") from exc


def parse_ocmf(record: str | bytes) -> OcmfRecord:
    """Split and parse an OCMF record; checks structure and the signature header only.

    An unsupported SA is refused here already, so a record that can never be verified
    does not get as far as a key lookup.
    """
    try:
        raw = record.encode("utf-8") if isinstance(record, str) else bytes(record)
    except UnicodeEncodeError as exc:  # lone surrogates in a str
        raise OcmfError("malformed", "an OCMF record is UTF-8 text") from exc
    if len(raw) > MAX_OCMF_BYTES:
        raise OcmfError("too-large", f"record is {len(raw)} bytes; the limit is {MAX_OCMF_BYTES}")
    if not raw.startswith(PREFIX):
        raise OcmfError("malformed", 'an OCMF record starts with "OCMF|"')
    # The payload may contain "|" inside strings; the signature section never does.
    separator = raw.rfind(b"|")
    if separator < len(PREFIX):
        raise OcmfError("malformed", "an OCMF record is OCMF|{payload}|{signature}")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OcmfError("malformed", "an OCMF record is UTF-8 text") from exc
    payload_bytes, signature_bytes = raw[len(PREFIX) : separator], raw[separator + 1 :]
    payload = _json_object(payload_bytes, "the payload")
    header = _json_object(signature_bytes, "the signature section")

    readings = payload.get("RD")
    if not isinstance(readings, list) or not all(isinstance(item, dict) for item in readings):
        raise OcmfError("malformed", "RD must be a list of reading objects")

    algorithm = header.get("SA", DEFAULT_SIGNATURE_ALGORITHM)
    if not isinstance(algorithm, str):
        raise OcmfError("malformed", "SA must be a string")
    curve, hash_name = _curve_and_hash(algorithm)
    encoding = header.get("SE", "hex")
    if encoding not in ("hex", "base64"):
        raise OcmfError("unsupported-encoding", f"SE {encoding!r} is neither hex nor base64")
    mime = header.get("SM", DER_MIME_TYPE)
    if mime != DER_MIME_TYPE:
        raise OcmfError("unsupported-algorithm", f"SM {mime!r}: only {DER_MIME_TYPE} is known")
    signature = OcmfSignature(
        algorithm=algorithm,
        curve=curve,
        hash_name=hash_name,
        encoding=encoding,
        data=_decode_sd(header.get("SD"), encoding),
    )
    return OcmfRecord(raw, payload_bytes, payload, signature)


# --------------------------------------------------------------------------- verification


def _curve_of(name: str) -> tuple[ec.EllipticCurve, int]:
    curve_class, _, size = _CURVES[name]
    return curve_class(), size


def load_ocmf_public_key(key: bytes, curve_name: str) -> ec.EllipticCurvePublicKey:
    """A public key as SPKI DER, or as a bare point on `curve_name`.

    Bare points occur in the field: Isabellenhütte publishes X‖Y without the 0x04 prefix.
    Accepted: SPKI DER; 0x04‖X‖Y; 0x02/0x03‖X (compressed); X‖Y.
    """
    if curve_name not in _CURVES:
        raise OcmfError("unsupported-curve", f"curve {curve_name!r} is not supported")
    curve, size = _curve_of(curve_name)
    raw_point_lengths = (1 + size, 2 * size, 1 + 2 * size)
    loaded = None
    if key[:1] == b"\x30":
        try:
            loaded = serialization.load_der_public_key(key)
        except (ValueError, UnsupportedAlgorithm) as exc:
            # A bare X‖Y may start with 0x30 too; only then is a DER failure not final.
            if len(key) not in raw_point_lengths:
                raise OcmfError("bad-public-key", f"not a usable SPKI DER key: {exc}") from exc
    if loaded is not None:
        if not isinstance(loaded, ec.EllipticCurvePublicKey):
            raise OcmfError("key-curve-mismatch", "the key is not an elliptic-curve key")
        if loaded.curve.name != curve.name:
            raise OcmfError(
                "key-curve-mismatch",
                f"SA names {curve_name} but the key is on {loaded.curve.name}",
            )
        return loaded
    if len(key) not in raw_point_lengths:
        raise OcmfError("bad-public-key", f"{len(key)} bytes is no {curve_name} key or point")
    if len(key) == 2 * size:
        key = b"\x04" + key
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, key)
    except ValueError as exc:
        raise OcmfError("bad-public-key", f"not a point on {curve_name}") from exc


def decode_signature_values(signature: bytes, curve_name: str) -> tuple[int, int]:
    """(r, s) from DER; failing that, from raw r‖s of exactly twice the field size.

    DER is what the specification says (SM application/x-der); raw r‖s is what
    Isabellenhütte meters send. Bytes that parse as DER are taken as DER. Either way the
    verifier checks the same (r, s) against the key, so accepting both encodings cannot make
    a forged signature verify.
    """
    try:
        return decode_dss_signature(signature)
    except ValueError:
        pass
    _, size = _curve_of(curve_name)
    if len(signature) == 2 * size:
        return int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
    raise OcmfError("bad-signature-encoding", "SD is neither DER nor raw r‖s for the curve")


def verify_ocmf(record: OcmfRecord | str | bytes, public_key: bytes | None) -> OcmfRecord:
    """Verify the record's signature under `public_key` (SPKI DER or a raw point).

    Returns the parsed record; raises OcmfError (never anything else) on any failure.
    """
    parsed = record if isinstance(record, OcmfRecord) else parse_ocmf(record)
    signature = parsed.signature
    if not public_key:
        raise OcmfError("missing-public-key", "no public key to verify the record against")
    key = load_ocmf_public_key(public_key, signature.curve)
    r, s = decode_signature_values(signature.data, signature.curve)
    try:
        key.verify(
            encode_dss_signature(r, s),
            parsed.payload_bytes,
            ec.ECDSA(_HASHES[signature.hash_name]()),
        )
    except InvalidSignature as exc:
        raise OcmfError("bad-signature", "the signature does not match payload and key") from exc
    except ValueError as exc:
        # e.g. r or s too large to encode for the curve: still just a bad signature
        raise OcmfError("bad-signature", f"the signature cannot be checked: {exc}") from exc
    return parsed


# --------------------------------------------------------------------------- readings


def ocmf_meter_id(payload: Mapping[str, Any]) -> str:
    """The registry meter id of a record: `MS` (meter serial), else `GS` (gateway serial).

    The registers in `RD` belong to the measuring instrument, which `MS` names; devices in
    which meter and signing gateway are one unit (KEBA) leave `MS` out and identify
    themselves by `GS`. `GI`/`MV`/`MM` are model and vendor names, not identities.
    """
    for field in ("MS", "GS"):
        value = payload.get(field)
        if isinstance(value, str) and value.strip():
            candidate = value.strip()
            if not METER_ID_PATTERN.fullmatch(candidate):
                raise OcmfError(
                    "missing-meter-id",
                    f"{field} {candidate!r} is not a valid meter id (A-Z a-z 0-9 . _ : -)",
                )
            return candidate
    raise OcmfError("missing-meter-id", "neither MS nor GS names the meter")


def parse_ocmf_time(text: Any) -> tuple[datetime, TimeStatus]:
    """`2021-10-07T15:29:55,000+0200 S` -> (aware datetime, "synchronised")."""
    match = _TM_PATTERN.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise OcmfError("bad-time", f"TM {text!r} is not YYYY-MM-DDThh:mm:ss,fff+hhmm F")
    year, month, day, hour, minute, second, millis, sign, off_h, off_m, flag = match.groups()
    offset = timedelta(hours=int(off_h), minutes=int(off_m))
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int(millis) * 1000,
            tzinfo=timezone(-offset if sign == "-" else offset),
        )
    except ValueError as exc:
        raise OcmfError("bad-time", f"TM {text!r} is not a valid date and time") from exc
    return moment, _TIME_STATUS[flag]


def ocmf_value_to_wh(value: Any, unit: str) -> int:
    """Exact conversion of `RV` in `RU` (kWh or Wh) to integer Wh.

    Values arrive as JSON integers, JSON decimals (parsed as Decimal) or strings such as
    "       9.038" and "1.606848e7". Decimal arithmetic is exact; a value that is not a whole
    number of Wh (0.2596 kWh) is refused, because rounding would put an energy figure into
    the registry that the meter never signed.
    """
    if unit not in _WH_PER_UNIT:
        raise OcmfError("bad-value", f"RU {unit!r} is not an energy unit (kWh, Wh)")
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise OcmfError("bad-value", f"RV {value!r} is not a number")
    try:
        number = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation as exc:
        raise OcmfError("bad-value", f"RV {value!r} is not a number") from exc
    if not number.is_finite():
        raise OcmfError("bad-value", f"RV {value!r} is not finite")
    if number.adjusted() > 20:
        # Bound before scaling so "1e999999999" cannot make us build a huge integer.
        raise OcmfError("bad-value", f"RV {value!r} is out of range")
    with localcontext() as context:
        context.prec = 60  # exact for every value that passed the bound above
        wh = number * _WH_PER_UNIT[unit]
        if wh != wh.to_integral_value():
            raise OcmfError("fractional-wh", f"RV {value!r} {unit} is not a whole number of Wh")
    result = int(wh)
    if not 0 <= result <= MAX_REGISTER_WH:
        raise OcmfError("bad-value", f"RV {value!r} {unit} is out of range")
    return result


def _register_of(obis: str) -> Register:
    match = _OBIS_PATTERN.match(obis)
    if not match:
        return "other"
    quantity, kind = int(match.group(1)), int(match.group(2))
    if kind == 8 and quantity == 1:
        return "import"
    if kind == 8 and quantity == 2:
        return "export"
    return "other"


def ocmf_readings(record: OcmfRecord) -> tuple[OcmfReading, ...]:
    """The energy readings of `RD`, in order.

    Entries without `TM` share the preceding entry's `TM`, `TX` and `ST` (vendors list several
    registers captured at one instant that way). Entries whose `RU` is not an energy unit
    (e.g. "sec" for a charging duration) are not energy readings and are left out here; they
    stay in `record.raw`, so nothing the meter signed is lost from the log.
    """
    meter = record.meter_id
    result: list[OcmfReading] = []
    moment: tuple[datetime, TimeStatus] | None = None
    transaction: str | None = None
    status: str | None = None
    for position, entry in enumerate(record.payload["RD"]):
        if "TM" in entry:
            moment = parse_ocmf_time(entry["TM"])
            transaction = _optional_text(entry, "TX", position)
            status = _optional_text(entry, "ST", position)
        elif moment is None:
            raise OcmfError("bad-time", f"RD[{position}] has no TM and no preceding TM")
        unit = entry.get("RU")
        if unit not in _WH_PER_UNIT:
            continue
        obis = entry.get("RI")
        if not isinstance(obis, str):
            raise OcmfError("malformed", f"RD[{position}].RI must be a string")
        result.append(
            OcmfReading(
                meter=meter,
                time=moment[0],
                time_status=moment[1],
                transaction=transaction,
                obis=obis,
                register=_register_of(obis),
                wh=ocmf_value_to_wh(entry.get("RV"), unit),
                status=status,
            )
        )
    return tuple(result)


def _optional_text(entry: Mapping[str, Any], field: str, position: int) -> str | None:
    value = entry.get(field)
    if value is not None and not isinstance(value, str):
        raise OcmfError("malformed", f"RD[{position}].{field} must be a string")
    return value


# --------------------------------------------------------------------------- the mapping


@dataclass(frozen=True, slots=True)
class OcmfMapping:
    """An OCMF record in DESIGN §4.3 terms (decision 31): what its log leaf's `payload` is."""

    meter: str
    seq: int
    time: int
    """Epoch seconds of the record's last energy reading, cut to whole seconds."""
    import_wh: int
    export_wh: int


def ocmf_mapping(record: OcmfRecord) -> OcmfMapping:
    """The one mapping of a record to a reading, run by ingestion, the audit and the verifier.

    `meter` is `MS` (else `GS`), `seq` the `PG` counter, `time` the `TM` of the last energy
    reading (cut, so a reading never moves later than the meter said), the registers the
    last import/export values in whole Wh (0 without an export register). Raises OcmfError.
    """
    pagination = record.pagination
    if pagination is None:
        raise OcmfError("malformed", "PG (the pagination counter, used as seq) is missing")
    readings = ocmf_readings(record)
    imports = [reading for reading in readings if reading.register == "import"]
    exports = [reading for reading in readings if reading.register == "export"]
    seq = pagination[1]
    if not imports:
        raise OcmfError(
            "malformed",
            "the record has no import energy register reading (OBIS 1-0:1.8.x in kWh/Wh)",
        )
    if seq > MAX_REGISTER_WH:
        raise OcmfError("malformed", f"PG counter {seq} is out of range")
    moment = math.floor(max(imports + exports, key=lambda r: r.time).time.timestamp())
    return OcmfMapping(
        record.meter_id, seq, moment, imports[-1].wh, exports[-1].wh if exports else 0
    )
