"""`carbonledger meter keygen | register | sign`: a meter's key, its registration, and signed
readings by hand (`meter simulate`, a Modbus meter, is in `api.cli.gateway`).

`register` writes to the registry's database like `admin create-client` and `readings
import` do, for an organisation named like `readings import --org`, through
`ledger.meters.registration`: the rules of `POST /v1/meters` and `POST /v1/meters/{id}/keys`,
the same `meter.registered/1` and `meter.key/1` log entries (docs/decisions.md, "`meter
register` writes to the registry's database").

`sign` turns readings into signed envelopes with the meter's key file, through
`meter_signing` (the device-side signer, which refuses a seq or time that does not increase):
for testing, for history signed after the fact, and for the README journeys. A key signs
readings only from its registered `validFrom` on; readings older than that are refused at
ingestion with `no-active-key`, so history needs `meter register --valid-from`.

Input for `sign` (UTF-8, header required, RFC 4180 quoting), or the four options for one
reading:

    seq,time,importWh,exportWh
    1,2026-06-01T00:00:00Z,1000,0

Output formats (stdout, or `--out FILE`, written only when every row was signed):

    jsonl   one envelope per line: {"payload": {...}, "alg": "Ed25519", "sig": "..."}
    body    {"readings": [...]}, one `POST /v1/readings` request
    csv     meter,seq,time,importWh,exportWh,alg,sig (what `readings import` reads)
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from api.cli.common import (
    EXIT_UNAVAILABLE,
    STDIN,
    CountingLines,
    InputError,
    JsonOption,
    OrganisationOption,
    api_settings,
    command_group,
    csv_records,
    decimal_cell,
    fail,
    open_registry,
    organisation_named,
    print_field,
    print_headline,
    stderr_console,
    stdout_console,
    utc_option,
    write_machine,
)
from api.cli.gateway import meter_simulate_command

if TYPE_CHECKING:
    from datetime import datetime

    from ledger.meters.readings import SignedReading
    from ledger.meters.registration import MeterKeyRecord, MeterRecord, MeterSpec
    from ledger.storage.db import Database

meter_app = command_group(
    "Meters: signing keys, registration, signed readings, a simulated Modbus meter."
)

SIGN_COLUMNS = ("seq", "time", "importWh", "exportWh")
IMPORT_COLUMNS = ("meter", "seq", "time", "importWh", "exportWh", "alg", "sig")
"""The `readings import` header (`api.cli.readings.COLUMNS`, which a test holds equal)."""
FORMATS = ("jsonl", "body", "csv")
MAX_SIGNED_ROWS = 100_000
"""Readings signed in one run (about three years at 15 minutes): all are signed, in memory,
before anything is written, so a refused row leaves no partial output."""


# -------------------------------------------------------------------------- keygen


@meter_app.command("keygen")
def keygen_command(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            metavar="FILE",
            help="Where to write the PKCS#8 PEM private key (mode 0600, never overwritten).",
            show_default=False,
            dir_okay=False,
        ),
    ],
    alg: Annotated[
        str, typer.Option("--alg", metavar="ALG", help="Ed25519 or ES256 (ECDSA P-256).")
    ] = "Ed25519",
    json_output: JsonOption = False,
) -> None:
    """Create a meter signing key; print its public key (SPKI, base64) and key id.

    The private key stays on the device; register the public key with `carbonledger meter
    register` (or `POST /v1/meters/{id}/keys`).
    """
    from ledger.keyfiles import KeyFileError
    from meter_signing.keys import create_meter_key_file

    if alg not in {"Ed25519", "ES256"}:
        fail(f"unknown --alg {alg!r}; use Ed25519 or ES256")
    try:
        key = create_meter_key_file(out, "ES256" if alg == "ES256" else "Ed25519")
    except KeyFileError as error:
        fail(str(error))
    if json_output:
        write_machine(
            json.dumps({"alg": key.alg, "keyId": key.key_id, "publicKey": key.public_spki_b64})
        )
        return
    console = stdout_console()
    print_headline(console, f"Meter key written to {out} (mode 0600).")
    print_field(console, "algorithm", key.alg)
    print_field(console, "key id", key.key_id)
    print_field(console, "public key", key.public_spki_b64)


# ------------------------------------------------------------------------ register

MeterOption = Annotated[
    str,
    typer.Option(
        "--meter", metavar="ID", help="The meter id its payloads carry.", show_default=False
    ),
]
KeyFileOption = Annotated[
    Path | None,
    typer.Option(
        "--key",
        metavar="FILE",
        help="The meter's private key file (from `meter keygen`); its public half is registered.",
        show_default=False,
        dir_okay=False,
    ),
]


@meter_app.command("register")
def register_command(
    ctx: typer.Context,
    *,
    meter: MeterOption,
    org: OrganisationOption,
    role: Annotated[
        str | None,
        typer.Option(
            "--role",
            metavar="ROLE",
            help="generation, consumption or bidirectional (required for a new meter).",
            show_default=False,
        ),
    ] = None,
    province: Annotated[
        str | None,
        typer.Option(
            "--province",
            metavar="CODE",
            help="ISO 3166-2 subdivision, e.g. CN-JS (required for a new meter).",
            show_default=False,
        ),
    ] = None,
    grid_region: Annotated[
        str | None,
        typer.Option(
            "--grid-region",
            metavar="REGION",
            help="north, northeast, east, central, northwest, south or southwest "
            "(required for a new meter).",
            show_default=False,
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            metavar="SOURCE",
            help="Energy source, e.g. solar or wind (required for generation).",
            show_default=False,
        ),
    ] = None,
    capacity_w: Annotated[
        int | None,
        typer.Option(
            "--capacity-w",
            metavar="W",
            min=1,
            help="Rated power in W (required for generation).",
            show_default=False,
        ),
    ] = None,
    key: KeyFileOption = None,
    public_key: Annotated[
        str | None,
        typer.Option(
            "--public-key",
            metavar="SPKI",
            help="Or the public key alone, base64 SPKI DER (as `meter keygen` prints it).",
            show_default=False,
        ),
    ] = None,
    valid_from: Annotated[
        str | None,
        typer.Option(
            "--valid-from",
            metavar="TIME",
            help="From when the key may sign, e.g. 2026-01-01T00:00:00Z (default: now). "
            "Readings timed before it are refused: for history, give a time at or "
            "before the first reading.",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Register a meter of an organisation and its public key.

    Same rules and log entries as `POST /v1/meters` and `POST /v1/meters/{id}/keys`. For a
    meter registered before, the key is added (the meter's attributes, if given, must match
    the registered ones); a key registered for it already is reported, not repeated.
    """
    from ledger.meters.registration import (
        KeyExistsError,
        MeterError,
        MeterNotFoundError,
        get_meter,
        register_key,
        register_meter,
    )
    from ledger.times import datetime_of, format_utc

    attributes = MeterAttributes(role, province, grid_region, source, capacity_w)
    public_der = public_key_of(key, public_key)
    starts = None if valid_from is None else datetime_of(utc_option(valid_from, "--valid-from"))
    with open_registry(api_settings(ctx)) as registry:
        organisation_id = organisation_named(registry.database, org)
        try:
            existing: MeterRecord | None = get_meter(registry.database, meter)
        except MeterNotFoundError:
            existing = None
        if existing is None:
            spec = new_meter_spec(meter, attributes)
            # Checked before the meter is written: a refused key must not leave a registered
            # meter without one.
            key_problem = refused_key(public_der) or key_taken(registry.database, public_der)
            if key_problem is not None:
                fail(key_problem)
            try:
                register_meter(registry.log, organisation_id, spec)
            except MeterError as error:
                fail(str(error))
        else:
            same_meter(existing, organisation_id, attributes)
        key_id = key_id_of(public_der)
        added = True
        try:
            register_key(
                registry.log,
                meter,
                public_der,
                organisation_id=organisation_id,
                valid_from=starts,
            )
        except KeyExistsError as error:
            owned = get_meter(registry.database, meter)
            if not any(record.key_id == key_id for record in owned.keys):
                fail(str(error))
            added = False  # this meter's key already: re-running the command changes nothing
        except MeterError as error:
            fail(str(error))
        registered = get_meter(registry.database, meter)
    record = next(item for item in registered.keys if item.key_id == key_id)
    if not added and starts is not None and int(starts.timestamp()) != record.valid_from:
        fail(
            f"key {key_id} of meter {meter!r} is registered already, valid from "
            f"{format_utc(record.valid_from)}; a key's validFrom cannot change: for readings "
            f"from {valid_from} on, register a new key (`meter keygen`) with --valid-from"
        )
    if json_output:
        from api.schemas.meters import MeterBody

        write_machine(MeterBody.from_record(registered).model_dump_json(by_alias=True))
        return
    print_registration(registered, record, new_meter=existing is None, new_key=added)


def public_key_of(key_file: Path | None, public_key: str | None) -> bytes:
    """SPKI DER from `--key FILE` or `--public-key BASE64` (exactly one of them)."""
    import base64
    import binascii

    from ledger.keyfiles import KeyFileError
    from meter_signing.keys import load_meter_key_file

    if (key_file is None) == (public_key is None):
        fail("give the meter's key: --key FILE (from `meter keygen`) or --public-key SPKI")
    if key_file is not None:
        try:
            return load_meter_key_file(key_file).public_spki
        except KeyFileError as error:
            fail(str(error), EXIT_UNAVAILABLE)
    assert public_key is not None
    try:
        return base64.b64decode(public_key, validate=True)
    except (binascii.Error, ValueError):
        fail("--public-key must be standard base64 (SPKI DER, as `meter keygen` prints it)")


def key_id_of(public_der: bytes) -> str:
    from ledger.meters.readings import key_id

    return key_id(public_der)


def refused_key(public_der: bytes) -> str | None:
    """Why `register_key` would refuse this key, as far as that is known without a write."""
    from ledger.meters.entries import MAX_PUBLIC_KEY_BYTES
    from ledger.meters.readings import ReadingFormatError, load_meter_public_key

    if len(public_der) > MAX_PUBLIC_KEY_BYTES:
        return f"a public key is at most {MAX_PUBLIC_KEY_BYTES} bytes of DER"
    try:
        load_meter_public_key(public_der)
    except ReadingFormatError as error:
        return str(error)
    return None


def key_taken(database: Database, public_der: bytes) -> str | None:
    """Why the key cannot be a new meter's: it is registered for a meter already."""
    from ledger.meters.models import MeterKey

    kid = key_id_of(public_der)
    with database.read() as session:
        row = session.get(MeterKey, kid)
        owner = None if row is None else row.meter_id
    return None if owner is None else f"key {kid} is already registered for meter {owner!r}"


def enum_option(kind: Any, value: str, option: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(item.value for item in kind)
        fail(f"{option} must be one of {choices}; not {value!r}")


@dataclass(frozen=True, slots=True)
class MeterAttributes:
    """A meter's attributes as given on the command line (each option may be absent)."""

    role: str | None
    province: str | None
    grid_region: str | None
    source: str | None
    capacity_w: int | None

    def by_option(self) -> dict[str, str | int | None]:
        return {
            "--role": self.role,
            "--province": self.province,
            "--grid-region": self.grid_region,
            "--source": self.source,
            "--capacity-w": self.capacity_w,
        }


def new_meter_spec(meter: str, given: MeterAttributes) -> MeterSpec:
    from ledger.meters.entries import EnergySource, GridRegion, MeterRole
    from ledger.meters.registration import MeterError, MeterSpec

    role, province, grid_region = given.role, given.province, given.grid_region
    missing = [
        option
        for option, value in (
            ("--role", role),
            ("--province", province),
            ("--grid-region", grid_region),
        )
        if value is None
    ]
    if missing:
        fail(f"meter {meter!r} is not registered yet: a new meter needs {', '.join(missing)}")
    assert role is not None and province is not None and grid_region is not None
    source = given.source
    spec = MeterSpec(
        meter_id=meter,
        role=enum_option(MeterRole, role, "--role"),
        province=province,
        grid_region=enum_option(GridRegion, grid_region, "--grid-region"),
        energy_source=None if source is None else enum_option(EnergySource, source, "--source"),
        capacity_w=given.capacity_w,
    )
    try:
        spec.validate()
    except MeterError as error:
        fail(str(error))
    return spec


def same_meter(existing: MeterRecord, organisation_id: str, given: MeterAttributes) -> None:
    """A registered meter's attributes are in the log for good: options must agree with them."""
    if existing.organisation_id != organisation_id:
        fail(f"meter {existing.meter_id!r} belongs to another organisation")
    registered = {
        "--role": existing.role.value,
        "--province": existing.province,
        "--grid-region": existing.grid_region.value,
        "--source": existing.energy_source.value if existing.energy_source else None,
        "--capacity-w": existing.capacity_w,
    }
    differ = [
        f"{option} {registered[option]!r}"
        for option, value in given.by_option().items()
        if value is not None and value != registered[option]
    ]
    if differ:
        fail(
            f"meter {existing.meter_id!r} is registered with {', '.join(differ)}; "
            "a registered meter's attributes cannot change"
        )


def print_registration(
    meter: MeterRecord, key: MeterKeyRecord, *, new_meter: bool, new_key: bool
) -> None:
    from ledger.times import format_utc

    console = stdout_console()
    if new_meter:
        headline = f"Meter {meter.meter_id} registered with its key."
    elif new_key:
        headline = f"Key added to meter {meter.meter_id}."
    else:
        headline = f"Meter {meter.meter_id} and this key were registered already."
    print_headline(console, headline)
    described = [meter.role.value, meter.province, f"{meter.grid_region.value} grid"]
    if meter.energy_source is not None:
        described.insert(1, meter.energy_source.value)
    if meter.capacity_w is not None:
        described.insert(2, f"{meter.capacity_w:,} W")
    print_field(console, "meter", meter.meter_id, ", ".join(described))
    print_field(console, "organisation", meter.organisation_id)
    print_field(console, "log entry", str(meter.log_index), "meter.registered/1")
    print_field(console, "key id", key.key_id, key.alg)
    print_field(
        console,
        "valid from",
        format_utc(key.valid_from),
        "readings timed earlier are refused",
    )
    print_field(console, "log entry", str(key.log_index), "meter.key/1")


# ---------------------------------------------------------------------------- sign


@dataclass(frozen=True, slots=True)
class Reading:
    row: int | None
    """Spreadsheet row number (header = 1); None for a reading given as options."""
    seq: int
    time: datetime
    import_wh: int
    export_wh: int


@meter_app.command("sign")
def sign_command(
    *,
    meter: MeterOption,
    key: Annotated[
        Path,
        typer.Option(
            "--key",
            metavar="FILE",
            help="The meter's private key file (from `meter keygen`).",
            show_default=False,
            dir_okay=False,
        ),
    ],
    csv_file: Annotated[
        str | None,
        typer.Option(
            "--csv",
            metavar="FILE|-",
            help="Readings to sign: a CSV with the header seq,time,importWh,exportWh (- for "
            "stdin). Without it, one reading from --seq, --time, --import-wh, --export-wh.",
            show_default=False,
        ),
    ] = None,
    seq: Annotated[
        int | None,
        typer.Option(
            "--seq", metavar="N", min=0, help="The reading's sequence number.", show_default=False
        ),
    ] = None,
    time: Annotated[
        str | None,
        typer.Option(
            "--time",
            metavar="TIME",
            help="When it was read, e.g. 2026-06-01T12:00:00Z.",
            show_default=False,
        ),
    ] = None,
    import_wh: Annotated[
        int | None,
        typer.Option(
            "--import-wh", metavar="WH", min=0, help="Import register, Wh.", show_default=False
        ),
    ] = None,
    export_wh: Annotated[
        int | None,
        typer.Option(
            "--export-wh", metavar="WH", min=0, help="Export register, Wh.", show_default=False
        ),
    ] = None,
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="FORMAT",
            help="jsonl (an envelope per line), body (one POST /v1/readings request) or csv "
            "(for `readings import`).",
        ),
    ] = "jsonl",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="FILE",
            help="Write here instead of stdout (replaced only once every reading is signed).",
            show_default=False,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Sign meter readings with the meter's key file, for testing and for history.

    Each reading is signed as the meter would sign it (DESIGN §4.3); seq and time must
    increase from row to row. The registry accepts a reading only if one of the meter's
    keys is valid at its time: register the key with `meter register --valid-from` at or
    before the first reading.
    """
    from ledger.keyfiles import KeyFileError
    from ledger.meters.readings import ReadingFormatError
    from meter_signing.keys import load_meter_key_file
    from meter_signing.signing import MeterSigner, SequenceError

    if output_format not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}; not {output_format!r}")
    readings = list(readings_to_sign(csv_file, seq, time, import_wh, export_wh))
    if not readings:
        fail(f"{csv_file} holds no readings, only the header")
    try:
        meter_key = load_meter_key_file(key)
    except KeyFileError as error:
        fail(str(error), EXIT_UNAVAILABLE)
    try:
        signer = MeterSigner(meter, meter_key)
    except ReadingFormatError as error:
        fail(f"--meter: {error}")
    signed: list[SignedReading] = []
    for reading in readings:
        try:
            signed.append(
                signer.sign(reading.seq, reading.time, reading.import_wh, reading.export_wh)
            )
        except (ReadingFormatError, SequenceError) as error:
            where = "" if reading.row is None else f"row {reading.row}: "
            fail(f"{where}{error}")
    text = render(signed, output_format)
    if out is None:
        write_machine(text)
        return
    replace_file(out, text)
    first, last = signed[0].payload, signed[-1].payload
    stderr_console().print(
        f"signed {len(signed):,} reading{'s' if len(signed) != 1 else ''} of {meter} "
        f"(seq {first.seq}..{last.seq}) with key {meter_key.key_id} ({meter_key.alg}) "
        f"into {out}"
    )


def readings_to_sign(
    csv_file: str | None,
    seq: int | None,
    time: str | None,
    import_wh: int | None,
    export_wh: int | None,
) -> Iterator[Reading]:
    one = {"--seq": seq, "--time": time, "--import-wh": import_wh, "--export-wh": export_wh}
    given = [option for option, value in one.items() if value is not None]
    if csv_file is not None:
        if given:
            fail(f"give --csv or {', '.join(given)}, not both")
        yield from csv_readings(csv_file)
        return
    from ledger.times import datetime_of

    missing = [option for option, value in one.items() if value is None]
    if missing:
        fail(
            f"give --csv FILE, or one reading with --seq, --time, --import-wh, --export-wh "
            f"(missing {', '.join(missing)})"
        )
    assert seq is not None and time is not None and import_wh is not None
    assert export_wh is not None
    yield Reading(None, seq, datetime_of(utc_option(time, "--time")), import_wh, export_wh)


def csv_readings(source: str) -> Iterator[Reading]:
    import sys

    if source == STDIN:
        if sys.stdin is None or sys.stdin.isatty():
            fail("expected readings on stdin, but stdin is a terminal; pipe them in")
        raw = sys.stdin.buffer
    else:
        try:
            raw = Path(source).open("rb")  # noqa: SIM115 - closed below, after the last row
        except OSError as error:
            fail(f"cannot read {source}: {error.strerror or error}")
    count = 0
    try:
        for record in csv_records(CountingLines(raw), SIGN_COLUMNS):
            if record.values is None:
                fail(f"row {record.number}: {record.problem}")
            count += 1
            if count > MAX_SIGNED_ROWS:
                fail(f"{source} holds more than {MAX_SIGNED_ROWS:,} readings; split it")
            yield csv_reading(record.number, record.values)
    except InputError as error:
        fail(f"{source}: {error}")
    finally:
        if raw is not sys.stdin.buffer:
            raw.close()


def csv_reading(row: int, values: dict[str, str]) -> Reading:
    from ledger.times import UtcTimeError, datetime_of, parse_utc

    numbers: dict[str, int] = {}
    for column in ("seq", "importWh", "exportWh"):
        number = decimal_cell(values[column].strip())
        if number is None:
            fail(f"row {row}: {column} must be a whole number, not {values[column]!r}")
        numbers[column] = number
    try:
        moment = datetime_of(parse_utc(values["time"].strip()))
    except UtcTimeError as error:
        fail(f"row {row}: {error}")
    return Reading(row, numbers["seq"], moment, numbers["importWh"], numbers["exportWh"])


def render(signed: list[SignedReading], output_format: str) -> str:
    envelopes = [reading.to_json() for reading in signed]
    if output_format == "jsonl":
        return "".join(json.dumps(envelope) + "\n" for envelope in envelopes)
    if output_format == "body":
        return json.dumps({"readings": envelopes}) + "\n"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(IMPORT_COLUMNS)
    for envelope in envelopes:
        cells = {**envelope["payload"], "alg": envelope["alg"], "sig": envelope["sig"]}
        writer.writerow([cells[column] for column in IMPORT_COLUMNS])
    return buffer.getvalue()


def replace_file(path: Path, text: str) -> None:
    """Write `text` to `path` whole or not at all (a temporary file renamed over it)."""
    temporary: Path | None = None
    try:
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False
        ) as handle:
            temporary = Path(handle.name)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
    except OSError as error:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        fail(f"cannot write {path}: {error.strerror or error}")


# The device side's simulated meter lives with the gateway (api.cli.gateway), under `meter`.
meter_app.command("simulate")(meter_simulate_command)
