"""The mine2cell command line: wires settings to components; no logic of its own."""

from __future__ import annotations

import copy
import datetime
import json
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import httpx
import typer
import uvicorn
from eth_utils import keccak
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mine2cell import __version__
from mine2cell.access.tokens import TokenStore
from mine2cell.api.app import StartRefusals, create_app
from mine2cell.audit.fetch import attestations
from mine2cell.audit.html import write_reports
from mine2cell.audit.text import print_verification
from mine2cell.audit.verify import load_report, verify
from mine2cell.chain.artifacts import load_artifact
from mine2cell.client import FAIL, PASS
from mine2cell.codes import Role
from mine2cell.config import Settings
from mine2cell.csv_import import RowResult, parse_feedstock, parse_material, read_rows, run_import
from mine2cell.errors import ConfigurationError, InvalidInput, Mine2CellError
from mine2cell.ids import parse_id, show_id
from mine2cell.index.sync import SyncResult
from mine2cell.materials import describe
from mine2cell.provenance.documents import passport_document
from mine2cell.provenance.engine import downstream, lot_provenance, passport_provenance
from mine2cell.provenance.text import print_downstream, print_provenance
from mine2cell.relay import intake
from mine2cell.relay.outbox import Accepted, OperationStatus, State
from mine2cell.service import Service
from mine2cell.signing.codec import parse_hex
from mine2cell.signing.eip712 import Input, LotId, Output, text32
from mine2cell.signing.keystore import Keystore, parse_private_key
from mine2cell.units import format_mass, parse_mass

app = typer.Typer(
    name="mine2cell",
    help="Battery raw-material traceability ledger: from mine to cell.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Where keys, the node state and the index live.", show_default=False
    ),
]
RpcUrl = Annotated[
    str | None,
    typer.Option("--rpc-url", help="JSON-RPC URL of a node (default: the embedded dev node)."),
]


def _settings(data_dir: Path | None, rpc_url: str | None) -> Settings:
    overrides: dict[str, object] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if rpc_url is not None:
        overrides["rpc_url"] = rpc_url
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        # A setting from the environment (MINE2CELL_*) that cannot be used: say which and why.
        problems = "; ".join(
            "MINE2CELL_"
            + "_".join(map(str, e["loc"])).upper()
            + ": "
            + e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise _fail(ConfigurationError(problems)) from None


def _fail(exc: Mine2CellError) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
    return typer.Exit(code=1)


@app.command()
def demo(data_dir: DataDir = None, rpc_url: RpcUrl = None) -> None:
    """Deploy a ledger and record a small battery supply chain on it, mine to passport."""
    from mine2cell.demo import run_demo

    try:
        run_demo(_settings(data_dir, rpc_url), console)
    except Mine2CellError as exc:
        raise _fail(exc) from None


@app.command()
def contract() -> None:
    """Show how the shipped ledger contract was built (compare with a deployed one)."""
    artifact = load_artifact("Ledger")
    console.print(f"contract        {artifact.contract_name}")
    console.print(f"compiler        {artifact.compiler_version}")
    settings = artifact.settings
    optimizer = settings.get("optimizer", {})
    console.print(
        f"settings        evm {settings.get('evmVersion')}, via-IR {settings.get('viaIR')}, "
        f"optimizer runs {optimizer.get('runs')}"
    )
    console.print(f"runtime size    {len(artifact.deployed_bytecode):,} bytes")
    console.print(f"runtime keccak  0x{keccak(artifact.deployed_bytecode).hex()}")


keys_app = typer.Typer(help="Encrypted key files of participants, in the data directory.")
app.add_typer(keys_app, name="keys")

PassphraseFile = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        help="Read the passphrase from this file (else MINE2CELL_PASSPHRASE, else a prompt).",
        exists=True,
        dir_okay=False,
    ),
]


def _passphrase(settings: Settings, passphrase_file: Path | None, *, confirm: bool) -> str:
    if passphrase_file is not None:
        return passphrase_file.read_text().rstrip("\n")
    if settings.passphrase is not None:
        return settings.passphrase.get_secret_value()
    if not sys.stdin.isatty():
        raise InvalidInput(
            "passphrase",
            "none given: use --passphrase-file or set MINE2CELL_PASSPHRASE (no terminal to ask)",
        )
    return str(typer.prompt("Passphrase", hide_input=True, confirmation_prompt=confirm))


def _keystore(settings: Settings) -> Keystore:
    return Keystore(settings.keys_dir)


@keys_app.command("new")
def keys_new(
    name: Annotated[str, typer.Argument(help="A name for the key, e.g. kolwezi-mine.")],
    data_dir: DataDir = None,
    passphrase_file: PassphraseFile = None,
) -> None:
    """Create a new random key, encrypted with a passphrase; print its address."""
    settings = _settings(data_dir, None)
    try:
        entry = _keystore(settings).new(name, _passphrase(settings, passphrase_file, confirm=True))
    except Mine2CellError as exc:
        raise _fail(exc) from None
    console.print(f"{entry.name}  {entry.address}  ({entry.path})", highlight=False)


@keys_app.command("import")
def keys_import(
    name: Annotated[str, typer.Argument(help="A name for the key.")],
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file",
            help="File holding the private key as hex (else a hidden prompt). Never pass a key "
            "on the command line: other users can read process listings.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    data_dir: DataDir = None,
    passphrase_file: PassphraseFile = None,
) -> None:
    """Import an existing private key into an encrypted key file."""
    settings = _settings(data_dir, None)
    try:
        if key_file is not None:
            raw = key_file.read_text()
        elif sys.stdin.isatty():
            raw = str(typer.prompt("Private key (hex)", hide_input=True))
        else:
            raise InvalidInput("private key", "none given: use --key-file (no terminal to ask)")
        key = parse_private_key(raw)
        entry = _keystore(settings).import_key(
            name, key, _passphrase(settings, passphrase_file, confirm=True)
        )
    except Mine2CellError as exc:
        raise _fail(exc) from None
    console.print(f"{entry.name}  {entry.address}  ({entry.path})", highlight=False)


@keys_app.command("list")
def keys_list(data_dir: DataDir = None) -> None:
    """List the key files: name and address."""
    settings = _settings(data_dir, None)
    try:
        entries = _keystore(settings).entries()
    except Mine2CellError as exc:
        raise _fail(exc) from None
    if not entries:
        console.print(f"no keys in {settings.keys_dir}; create one with `mine2cell keys new NAME`")
    for entry in entries:
        console.print(f"{entry.name}  {entry.address}", highlight=False)


@keys_app.command("address")
def keys_address(
    name: Annotated[str, typer.Argument(help="The key's name.")], data_dir: DataDir = None
) -> None:
    """Print the address of a key (no passphrase needed)."""
    settings = _settings(data_dir, None)
    try:
        console.print(_keystore(settings).entry(name).address, highlight=False)
    except Mine2CellError as exc:
        raise _fail(exc) from None


# -- participants' commands ---------------------------------------------------------------------

Ledger = Annotated[
    str | None,
    typer.Option(
        "--ledger", help="Ledger contract address (default: the one remembered for the chain)."
    ),
]
As = Annotated[
    str, typer.Option("--as", help="Name of the key file that signs (see `mine2cell keys list`).")
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Wait = Annotated[
    bool,
    typer.Option(
        "--wait/--no-wait",
        help="Wait until the operation is confirmed or rejected (default), or return once it is "
        "safely queued.",
    ),
]


@dataclass
class _Options:
    data_dir: Path | None
    rpc_url: str | None
    ledger: str | None
    passphrase_file: Path | None
    json: bool
    wait: bool = True

    def settings(self) -> Settings:
        settings = _settings(self.data_dir, self.rpc_url)
        if self.ledger is not None:
            settings = settings.model_copy(update={"ledger_address": self.ledger})
        return settings


@contextmanager
def _service(opts: _Options) -> Iterator[Service]:
    settings = opts.settings()
    with Service(
        settings,
        passphrase=lambda: _passphrase(settings, opts.passphrase_file, confirm=False),
        notify=lambda message: err_console.print(message, highlight=False),
    ) as service:
        yield service


def _print_statuses(service: Service, statuses: list[OperationStatus], *, as_json: bool) -> None:
    head = service.w3.eth.block_number
    if as_json:
        payload = [s.as_json(head) for s in statuses]
        print(json.dumps(payload[0] if len(payload) == 1 else payload, indent=2))
        return
    for s in statuses:
        line = f"{s.state.value:<9} {s.kind:<12} event 0x{s.event_id.hex()}"
        if s.state is State.CONFIRMED and s.block_number is not None:
            n = s.confirmations(head)
            line += f"  block {s.block_number} ({n} confirmation{'' if n == 1 else 's'})"
        if s.tx_hash is not None:
            line += f"  tx 0x{s.tx_hash.hex()}"
        console.print(line, highlight=False)
        if s.state is State.REJECTED:
            console.print(f"          {s.reason}", highlight=False)


def _operate(opts: _Options, action: Callable[[Service], Accepted]) -> None:
    """Sign and queue one operation, wait for it unless told not to, print where it is; exit 1
    when it was refused or rejected."""
    try:
        with _service(opts) as service:
            accepted = action(service)
            statuses = (service.settle([accepted.event_id]) if opts.wait else {}) or {
                accepted.event_id: accepted.status
            }
            status = statuses.get(accepted.event_id) or service.outbox.status(accepted.event_id)
            assert status is not None
            _print_statuses(service, [status], as_json=opts.json)
            if status.state is State.REJECTED:
                raise _rejected([status])
    except Mine2CellError as exc:
        raise _fail(exc) from None


def _rejected(statuses: list[OperationStatus]) -> typer.Exit:
    """Exit 1 after rejections, each said on one stderr line (the statuses are on stdout)."""
    for s in statuses:
        reason = s.reason or s.error or "no reason given"
        why = reason if reason.startswith("rejected") else f"rejected: {reason}"
        err_console.print(
            f"[bold red]error:[/] {s.kind} 0x{s.event_id.hex()} was {why}", highlight=False
        )
    return typer.Exit(code=1)


def _document_hash(document: Path | None, document_hash: str | None) -> bytes:
    if document is not None and document_hash is not None:
        raise InvalidInput("document", "give either --document or --document-hash, not both")
    if document is not None:
        try:
            return keccak(document.read_bytes())
        except OSError as exc:
            raise InvalidInput("document", f"cannot read {document}: {exc.strerror}") from None
    if document_hash is not None:
        return parse_hex("document-hash", document_hash, 32)
    return bytes(32)


def _input(text: str, field: str = "inputs") -> Input:
    lot, sep, quantity = text.rpartition("=")
    if not sep or not lot:
        raise InvalidInput(field, f"{text!r}: write LOT=QUANTITY, e.g. KOL-0042=12.5t")
    return Input(LotId(parse_id(lot, field)), parse_mass(quantity, field))


def _output(text: str) -> Output:
    lot, sep, rest = text.rpartition("=")
    mat, colon, quantity = rest.partition(":")
    if not sep or not lot or not colon:
        raise InvalidInput(
            "outputs", f"{text!r}: write LOT=MATERIAL:QUANTITY, e.g. SULF-7=co-sulfate:20t"
        )
    return Output(
        LotId(parse_id(lot, "outputs")), parse_material(mat), parse_mass(quantity, "outputs")
    )


DocumentFile = Annotated[
    Path | None,
    typer.Option(
        "--document",
        help="File whose keccak-256 hash is recorded (assay, bill...).",
        exists=True,
        dir_okay=False,
    ),
]
DocumentHash = Annotated[
    str | None, typer.Option("--document-hash", help="The hash itself: 0x and 64 hex digits.")
]
Footprint = Annotated[
    str, typer.Option("--footprint", help="Carbon footprint of this step, as CO2e mass: 9.6t.")
]

lot_app = typer.Typer(help="Commission, ship, receive and transform lots.", no_args_is_help=True)
app.add_typer(lot_app, name="lot")
passport_app = typer.Typer(help="Bind battery passports to material.", no_args_is_help=True)
app.add_typer(passport_app, name="passport")
participant_app = typer.Typer(
    help="The governor accredits, revokes and certifies participants.", no_args_is_help=True
)
app.add_typer(participant_app, name="participant")
export_app = typer.Typer(
    help="Export ledger events in interchange formats (GS1 EPCIS 2.0, ...).", no_args_is_help=True
)
app.add_typer(export_app, name="export")


@lot_app.command("commission")
def lot_commission(
    lot: Annotated[str, typer.Argument(help="Lot number, URI or 0x id.")],
    as_: As,
    material_: Annotated[
        str, typer.Option("--material", help="Material key or code, e.g. co-hydroxide or 101.")
    ],
    quantity: Annotated[str, typer.Option("--quantity", help="Mass with a unit: 12.5t, 800kg.")],
    feedstock: Annotated[
        str, typer.Option("--feedstock", help="primary, pre-consumer or post-consumer.")
    ] = "primary",
    footprint: Footprint = "0g",
    document: DocumentFile = None,
    document_hash: DocumentHash = None,
    data_dir: DataDir = None,
    rpc_url: RpcUrl = None,
    ledger: Ledger = None,
    passphrase_file: PassphraseFile = None,
    json_out: JsonOut = False,
    wait: Wait = True,
) -> None:
    """A mine (primary) or a recycler (recycled feedstock) records a new lot."""
    opts = _Options(data_dir, rpc_url, ledger, passphrase_file, json_out, wait)
    _operate(
        opts,
        lambda s: s.client(as_).commission(
            parse_id(lot),
            material=parse_material(material_),
            quantity=parse_mass(quantity),
            feedstock=parse_feedstock(feedstock),
            footprint=parse_mass(footprint, "footprint", allow_zero=True),
            document_hash=_document_hash(document, document_hash),
        ),
    )


@lot_app.command("ship")
def lot_ship(
    lot: Annotated[str, typer.Argument(help="Lot number, URI or 0x id.")],
    to: Annotated[str, typer.Option("--to", help="Recipient: address or key name.")],
    as_: As,
    data_dir: DataDir = None,
    rpc_url: RpcUrl = None,
    ledger: Ledger = None,
    passphrase_file: PassphraseFile = None,
    json_out: JsonOut = False,
    wait: Wait = True,
) -> None:
    """Ship a lot you hold to another participant (custody moves when they receive it)."""
    opts = _Options(data_dir, rpc_url, ledger, passphrase_file, json_out, wait)
    _operate(opts, lambda s: s.client(as_).ship(parse_id(lot), s.account(to, "recipient")))


def _handoff(kind: str) -> Callable[..., None]:
    def command(
        lot: Annotated[str, typer.Argument(help="Lot number, URI or 0x id.")],
        as_: As,
        data_dir: DataDir = None,
        rpc_url: RpcUrl = None,
        ledger: Ledger = None,
        passphrase_file: PassphraseFile = None,
        json_out: JsonOut = False,
        wait: Wait = True,
    ) -> None:
        opts = _Options(data_dir, rpc_url, ledger, passphrase_file, json_out, wait)
        _operate(opts, lambda s: getattr(s.client(as_), kind)(parse_id(lot)))

    return command


lot_app.command("receive", help="Accept a shipment addressed to you: custody moves to you.")(
    _handoff("receive")
)
lot_app.command("reject", help="Refuse a shipment addressed to you: it returns to the sender.")(
    _handoff("reject")
)
lot_app.command("recall", help="Take back a lot you shipped before its recipient receives it.")(
    _handoff("recall")
)


@lot_app.command("transform")
def lot_transform(
    as_: As,
    inputs: Annotated[
        list[str], typer.Option("--in", help="Consumed: LOT=QUANTITY (repeat for a blend).")
    ],
    outputs: Annotated[
        list[str],
        typer.Option("--out", help="Produced: LOT=MATERIAL:QUANTITY (repeat for a split)."),
    ],
    footprint: Footprint = "0g",
    data_dir: DataDir = None,
    rpc_url: RpcUrl = None,
    ledger: Ledger = None,
    passphrase_file: PassphraseFile = None,
    json_out: JsonOut = False,
    wait: Wait = True,
) -> None:
    """Refine, split or blend: consume input lots you hold, produce new lots."""
    opts = _Options(data_dir, rpc_url, ledger, passphrase_file, json_out, wait)
    _operate(
        opts,
        lambda s: s.client(as_).transform(
            [_input(i) for i in inputs],
            [_output(o) for o in outputs],
            footprint=parse_mass(footprint, "footprint", allow_zero=True),
        ),
    )


@lot_app.command("show")
def lot_show(
    lot: Annotated[str, typer.Argument(help="Lot number, URI or 0x id.")],
    data_dir: DataDir = None,
    rpc_url: RpcUrl = None,
    ledger: Ledger = None,
    json_out: JsonOut = False,
) -> None:
    """A lot's current state on the ledger: custodian, shipment in transit, remaining mass."""
    opts = _Options(data_dir, rpc_url, ledger, None, json_out)
    try:
        with _service(opts) as service:
            lot_id = parse_id(lot)
            view = service.ledger.lot(lot_id)
            if view is None:
                raise InvalidInput("lot", f"lot {show_id(lot_id)} does not exist on this ledger")
            data = {
                "lot": "0x" + lot_id.hex(),
                "name": show_id(lot_id),
                "material": view.material,
                "materialName": describe(view.material),
                "custodian": view.custodian,
                "inTransitTo": view.recipient,
                "remainingGrams": view.remaining,
            }
            if json_out:
                print(json.dumps(data, indent=2))
                return
            console.print(f"lot        {show_id(lot_id)}  (0x{lot_id.hex()})", highlight=False)
            console.print(f"material   {describe(view.material)} ({view.material})")
            console.print(f"custodian  {view.custodian}", highlight=False)
            if view.recipient is not None:
                console.print(f"in transit to {view.recipient}", highlight=False)
            console.print(
                f"remaining  {format_mass(view.remaining) if view.remaining else 'closed'}"
            )
    except Mine2CellError as exc:
        raise _fail(exc) from None


@passport_app.command("bind")
def passport_bind(
    passport: Annotated[str, typer.Argument(help="Passport id: text, URI or 0x id.")],
    as_: As,
    inputs: Annotated[list[str], typer.Option("--in", help="Consumed: LOT=QUANTITY (repeat).")],
    footprint: Footprint = "0g",
    document: DocumentFile = None,
    document_hash: DocumentHash = None,
    data_dir: DataDir = None,
    rpc_url: RpcUrl = None,
    ledger: Ledger = None,
    passphrase_file: PassphraseFile = None,
    json_out: JsonOut = False,
    wait: Wait = True,
) -> None:
    """A cell maker binds a battery passport to the material that went into the battery."""
    opts = _Options(data_dir, rpc_url, ledger, passphrase_file, json_out, wait)
    _operate(
        opts,
        lambda s: s.client(as_).bind_passport(
            parse_id(passport, "passport"),
            [_input(i) for i in inputs],
            footprint=parse_mass(footprint, "footprint", allow_zero=True),
            document_hash=_document_hash(document, document_hash),
        ),
    )


def _names(service: Service) -> dict[str, str]:
    """Key names by address, to show participants by name where this data directory knows them."""
    try:
        return {entry.address: entry.name for entry in service.keystore.entries()}
    except Mine2CellError:
        return {}


@passport_app.command("show")
def passport_show(
    passport: Annotated[str, typer.Argument(help="Passport id: text, URI or 0x id.")],
    tree: Annotated[bool, typer.Option("--tree/--no-tree", help="Draw the upstream tree.")] = True,
    data_dir: DataDir = None,
    rpc_url: RpcUrl = None,
    ledger: Ledger = None,
    json_out: JsonOut = False,
) -> None:
    """Where a battery's raw materials come from: origins by mine, country and element,
    recycled content, carbon footprint, due-diligence flags and the upstream tree."""
    opts = _Options(data_dir, rpc_url, ledger, None, json_out)
    try:
        with _service(opts) as service:
            _sync(service, quiet=json_out)
            passport_id = parse_id(passport, "passport")
            unbound = InvalidInput(
                "passport", f"passport {show_id(passport_id)} is not bound on this ledger"
            )
            high_risk = service.settings.high_risk_country_set
            if json_out:
                document = passport_document(
                    service.store(), passport_id, high_risk_countries=high_risk
                )
                if document is None:
                    raise unbound
                print(json.dumps(json.loads(document), indent=2))
                return
            graph = service.store().upstream(passport_id)
            if graph is None:
                raise unbound
            report = passport_provenance(
                graph, passport_id, high_risk_countries=high_risk, now=int(time.time())
            )
            print_provenance(
                console,
                report,
                title=f"passport {show_id(passport_id)}",
                names=_names(service),
                tree=tree,
            )
    except Mine2CellError as exc:
        raise _fail(exc) from None


@lot_app.command("trace")
def lot_trace(
    lot: Annotated[
        str | None, typer.Argument(help="Lot number, URI or 0x id (or give --facility).")
    ] = None,
    downstream_: Annotated[
        bool,
        typer.Option(
            "--downstream", help="Where its material went: every lot and passport containing it."
        ),
    ] = False,
    facility: Annotated[
        str | None,
        typer.Option("--facility", help="All lots commissioned at this mine or recycler."),
    ] = None,
    tree: Annotated[bool, typer.Option("--tree/--no-tree", help="Draw the upstream tree.")] = True,
    data_dir: DataDir = None,
    rpc_url: RpcUrl = None,
    ledger: Ledger = None,
    json_out: JsonOut = False,
) -> None:
    """A lot's provenance (upstream: origins, footprint, flags), or with --downstream every lot
    and passport its material reached, with quantities (for recalls)."""
    opts = _Options(data_dir, rpc_url, ledger, None, json_out)
    try:
        if (lot is None) == (facility is None):
            raise InvalidInput("lot", "give a lot, or --facility for all lots of a mine")
        with _service(opts) as service:
            _sync(service, quiet=json_out)
            store = service.store()
            if facility is not None:
                start = store.lots_of_facility(text32(facility, "facility"))
                if not start:
                    raise InvalidInput("facility", f"no lot was commissioned at {facility!r}")
                label = f"facility {facility}"
            else:
                assert lot is not None
                start = [parse_id(lot)]
                label = f"lot {show_id(start[0])}"
            if downstream_ or facility is not None:
                graph = store.downstream(start)
                if start[0] not in graph.lots:
                    raise InvalidInput("lot", f"{label} is not in the index of this ledger")
                result = downstream(graph, start)
                if json_out:
                    print(json.dumps(result.to_json(), indent=2))
                    return
                print_downstream(console, result, title=label)
                return
            graph = store.ancestry(start)
            if start[0] not in graph.lots:
                raise InvalidInput("lot", f"{label} is not in the index of this ledger")
            report = lot_provenance(
                graph, start[0], high_risk_countries=service.settings.high_risk_country_set
            )
            if json_out:
                print(json.dumps(report.to_json(), indent=2))
                return
            print_provenance(
                console, report, title=label, names=_names(service), tree=tree, whole_lot=True
            )
    except Mine2CellError as exc:
        raise _fail(exc) from None


def _roles(text: str) -> int:
    mask = 0
    for name in text.split(","):
        key = name.strip().upper().replace("-", "_")
        if key not in Role.__members__:
            known = ", ".join(r.lower().replace("_", "-") for r in Role.__members__)
            raise InvalidInput("roles", f"unknown role {name.strip()!r}; roles: {known}")
        mask |= Role[key]
    return mask


GovernorAs = Annotated[
    str | None,
    typer.Option("--as", help="Key file of the governor (default: settings' governor key)."),
]


@participant_app.command("accredit")
def participant_accredit(
    participant: Annotated[str, typer.Argument(help="Address or key name.")],
    roles: Annotated[
        str,
        typer.Option(
            "--roles",
            help="Comma-separated: mine, recycler, processor, cell-maker, auditor, relayer.",
        ),
    ],
    facility: Annotated[str, typer.Option("--facility", help="Facility id (at most 32 bytes).")],
    country: Annotated[str, typer.Option("--country", help="ISO 3166-1 alpha-2, e.g. CD.")],
    as_: GovernorAs = None,
    data_dir: DataDir = None,
    rpc_url: RpcUrl = None,
    ledger: Ledger = None,
    passphrase_file: PassphraseFile = None,
    json_out: JsonOut = False,
    wait: Wait = True,
) -> None:
    """Accredit a participant with roles, facility and country (or change them)."""
    opts = _Options(data_dir, rpc_url, ledger, passphrase_file, json_out, wait)
    _operate(
        opts,
        lambda s: s.client(as_ or s.settings.governor_key).accredit(
            s.account(participant),
            roles=_roles(roles),
            facility=text32(facility, "facility"),
            country=country.upper(),
        ),
    )


@participant_app.command("revoke")
def participant_revoke(
    participant: Annotated[str, typer.Argument(help="Address or key name.")],
    as_: GovernorAs = None,
    data_dir: DataDir = None,
    rpc_url: RpcUrl = None,
    ledger: Ledger = None,
    passphrase_file: PassphraseFile = None,
    json_out: JsonOut = False,
    wait: Wait = True,
) -> None:
    """Revoke a participant: its later operations are refused; its history stays."""
    opts = _Options(data_dir, rpc_url, ledger, passphrase_file, json_out, wait)
    _operate(
        opts, lambda s: s.client(as_ or s.settings.governor_key).revoke(s.account(participant))
    )


@participant_app.command("certify")
def participant_certify(
    participant: Annotated[str, typer.Argument(help="Address or key name.")],
    scheme: Annotated[str, typer.Option("--scheme", help="Certification scheme, e.g. RMAP.")],
    valid_until: Annotated[
        str, typer.Option("--valid-until", help="Last valid day, YYYY-MM-DD (UTC).")
    ],
    as_: GovernorAs = None,
    document: DocumentFile = None,
    document_hash: DocumentHash = None,
    data_dir: DataDir = None,
    rpc_url: RpcUrl = None,
    ledger: Ledger = None,
    passphrase_file: PassphraseFile = None,
    json_out: JsonOut = False,
    wait: Wait = True,
) -> None:
    """Record a participant's certification (RMAP, IRMA...) and its validity."""
    opts = _Options(data_dir, rpc_url, ledger, passphrase_file, json_out, wait)
    _operate(
        opts,
        lambda s: s.client(as_ or s.settings.governor_key).certify(
            s.account(participant),
            scheme=text32(scheme, "scheme"),
            valid_until=_end_of_day(valid_until),
            document_hash=_document_hash(document, document_hash),
        ),
    )


def _end_of_day(text: str) -> int:
    try:
        day = datetime.date.fromisoformat(text)
    except ValueError:
        raise InvalidInput("valid-until", f"{text!r} is not a date; write YYYY-MM-DD") from None
    if day < datetime.datetime.now(datetime.UTC).date():
        raise InvalidInput("valid-until", f"{text} is in the past; give the last day of validity")
    end = datetime.datetime.combine(day, datetime.time.max, tzinfo=datetime.UTC)
    return int(end.timestamp())


@app.command()
def status(
    event_id: Annotated[
        str | None, typer.Argument(help="Event id (0x...); none: a summary of the outbox.")
    ] = None,
    data_dir: DataDir = None,
    rpc_url: RpcUrl = None,
    ledger: Ledger = None,
    json_out: JsonOut = False,
) -> None:
    """Where an operation is: pending, submitted (tx), confirmed (block, confirmations) or
    rejected (reason). Without an event id: counts and the latest operations."""
    opts = _Options(data_dir, rpc_url, ledger, None, json_out)
    try:
        with _service(opts) as service:
            if event_id is not None:
                found = service.outbox.status(parse_hex("event id", event_id, 32))
                if found is None:
                    raise InvalidInput("event id", f"{event_id} is not in this service's outbox")
                _print_statuses(service, [found], as_json=json_out)
                return
            counts = service.outbox.counts()
            recent = service.outbox.recent(10)
            if json_out:
                head = service.w3.eth.block_number
                print(
                    json.dumps(
                        {
                            "ledger": service.ledger.address,
                            "chainId": service.ledger.domain.chain_id,
                            "counts": {k.value: v for k, v in counts.items()},
                            "recent": [s.as_json(head) for s in recent],
                        },
                        indent=2,
                    )
                )
                return
            console.print(
                f"ledger {service.ledger.address} on chain {service.ledger.domain.chain_id}",
                highlight=False,
            )
            console.print("  ".join(f"{k.value} {v}" for k, v in counts.items()))
            _print_statuses(service, recent, as_json=False)
    except Mine2CellError as exc:
        raise _fail(exc) from None


@app.command()
def submit(
    file: Annotated[
        Path,
        typer.Argument(
            help="JSON file: one signed-operation document or a list of them.",
            exists=True,
            dir_okay=False,
        ),
    ],
    data_dir: DataDir = None,
    rpc_url: RpcUrl = None,
    ledger: Ledger = None,
    json_out: JsonOut = False,
    wait: Wait = True,
) -> None:
    """Relay operations signed elsewhere (a wallet, another system): signature, signer and
    deadline are checked before they are accepted."""
    opts = _Options(data_dir, rpc_url, ledger, None, json_out, wait)
    try:
        try:
            loaded = json.loads(file.read_text())
        except ValueError as exc:
            raise InvalidInput("file", f"{file} is not JSON: {exc}") from None
        documents = loaded if isinstance(loaded, list) else [loaded]
        with _service(opts) as service:
            accepted = [
                intake.accept_document(service.outbox, service.ledger, d) for d in documents
            ]
            ids = [a.event_id for a in accepted]
            statuses = service.settle(ids) if wait else service.outbox.statuses(ids)
            shown = [statuses[i] for i in ids]
            _print_statuses(service, shown, as_json=json_out)
            if any(s.state is State.REJECTED for s in shown):
                raise _rejected([s for s in shown if s.state is State.REJECTED])
    except Mine2CellError as exc:
        raise _fail(exc) from None


@app.command("import")
def import_csv(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV file of lot events, or a GS1 EPCIS 2.0 document (.jsonld, .json).",
            exists=True,
            dir_okay=False,
        ),
    ],
    as_: As,
    data_dir: DataDir = None,
    rpc_url: RpcUrl = None,
    ledger: Ledger = None,
    passphrase_file: PassphraseFile = None,
    json_out: JsonOut = False,
) -> None:
    """Log many lot events at once. Columns: action (commission|ship|receive|reject|recall),
    lot, material, quantity, feedstock, footprint, recipient, document. Rows with errors are
    reported by line and skipped; the others go through. An EPCIS 2.0 document (.jsonld or .json)
    is captured event by event (see `mine2cell.interop.capture`): each event is signed by --as or
    refused with the reason; capturing a document again records nothing twice."""
    opts = _Options(data_dir, rpc_url, ledger, passphrase_file, json_out)
    if file.suffix.lower() in (".jsonld", ".json"):
        _import_epcis(opts, file, as_)
        return
    try:
        rows, results = read_rows(file)
        with _service(opts) as service:
            client = service.client(as_)
            with Progress(
                TextColumn("importing"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err_console,
                disable=json_out or not err_console.is_terminal,
            ) as progress:
                task = progress.add_task("rows", total=len(rows))
                results += run_import(
                    client,
                    rows,
                    account=lambda text: service.account(text, "recipient"),
                    settle=service.settle,
                    progress=lambda n: progress.advance(task, n),
                )
            results.sort(key=lambda r: r.line)
            _print_import(service, results, as_json=json_out)
            if any(r.error or (r.status and r.status.state is State.REJECTED) for r in results):
                raise typer.Exit(code=1)
    except Mine2CellError as exc:
        raise _fail(exc) from None


def _import_epcis(opts: _Options, file: Path, key: str) -> None:
    """Capture an EPCIS 2.0 document signed by ``key``, wait for its operations, print per
    event what became of it; exit 1 when any event was refused or rejected."""
    from mine2cell.interop import capture as capturing

    try:
        try:
            text = file.read_bytes()
        except OSError as exc:
            raise InvalidInput("file", f"cannot read {file}: {exc.strerror}") from None
        document = capturing.load(text)
        with _service(opts) as service:
            outcomes = capturing.capture(
                document, service.ledger, service.outbox, service.signer(key)
            )
            ids = [o.event_id for o in outcomes if o.event_id is not None]
            statuses = service.settle(ids) if ids else {}
            outcomes = list(capturing.settled(outcomes, statuses))
        failed = [
            o
            for o in outcomes
            if o.result == "rejected" or (o.status is not None and o.status.state is State.REJECTED)
        ]
        if opts.json:
            print(json.dumps([o.as_json() for o in outcomes], indent=2))
        else:
            for o in failed:
                name = o.epcis_event_id or f"event {o.index}"
                where = f" at {o.field}" if o.field else ""
                reason = o.reason or (o.status.reason if o.status is not None else "")
                err_console.print(f"{name}: rejected{where}: {reason}", highlight=False)
            tally = capturing.counts(outcomes)
            confirmed = sum(
                1 for o in outcomes if o.status is not None and o.status.state is State.CONFIRMED
            )
            console.print(
                f"{confirmed} events confirmed, {tally['duplicate']} already captured, "
                f"{len(failed)} refused, of {len(outcomes)}",
                highlight=False,
            )
        if failed:
            raise typer.Exit(code=1)
    except Mine2CellError as exc:
        raise _fail(exc) from None


def _print_import(service: Service, results: list[RowResult], *, as_json: bool) -> None:
    head = service.w3.eth.block_number
    if as_json:
        out = []
        for r in results:
            item: dict[str, object] = {"line": r.line, "action": r.action, "lot": r.lot}
            if r.error:
                item["error"] = r.error
            if r.status is not None:
                item.update(r.status.as_json(head))
            out.append(item)
        print(json.dumps(out, indent=2))
        return
    confirmed = sum(1 for r in results if r.status and r.status.state is State.CONFIRMED)
    for r in results:
        if r.error:
            err_console.print(f"line {r.line}: {r.error}", highlight=False)
        elif r.status is not None and r.status.state is State.REJECTED:
            err_console.print(f"line {r.line}: {r.status.reason}", highlight=False)
    failed = sum(1 for r in results if r.error or (r.status and r.status.state is State.REJECTED))
    console.print(f"{confirmed} rows confirmed, {failed} failed, of {len(results)}")


def _sync(service: Service, *, quiet: bool) -> SyncResult:
    """Bring the index up to date, with a progress bar over blocks unless ``quiet``."""
    indexer = service.indexer()
    with Progress(
        TextColumn("indexing blocks"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=quiet or not err_console.is_terminal,
        transient=True,
    ) as progress:
        task = progress.add_task("sync", total=None)

        def advance(first: int, done: int, target: int) -> None:
            progress.update(task, total=target - first + 1, completed=done - first + 1)

        return indexer.sync(advance)


@app.command()
def sync(
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Forget the index and read the whole chain again.")
    ] = False,
    data_dir: DataDir = None,
    rpc_url: RpcUrl = None,
    ledger: Ledger = None,
    json_out: JsonOut = False,
) -> None:
    """Follow the ledger's events into the local index (reorg-aware; safe to re-run)."""
    opts = _Options(data_dir, rpc_url, ledger, None, json_out)
    try:
        with _service(opts) as service:
            if rebuild:
                service.rebuild_index()
            result = _sync(service, quiet=json_out)
            counts = service.store().counts()
            if json_out:
                print(
                    json.dumps(
                        {
                            "fromBlock": result.from_block,
                            "toBlock": result.to_block,
                            "logs": result.logs,
                            "stored": result.stored,
                            "rolledBackTo": result.rolled_back_to,
                            "seconds": round(result.seconds, 3),
                            "rows": counts,
                        },
                        indent=2,
                    )
                )
                return
            if result.rolled_back_to is not None:
                console.print(
                    f"the chain reorganised: rolled back to block {result.rolled_back_to}"
                )
            rate = result.logs / result.seconds if result.seconds > 0 else 0.0
            if result.from_block > result.to_block:
                console.print(f"the index is up to date at block {result.to_block}")
            else:
                console.print(
                    f"indexed blocks {result.from_block}..{result.to_block}: {result.logs} "
                    f"events ({result.stored} new) in {result.seconds:.2f} s ({rate:,.0f}/s)"
                )
            console.print(
                f"{counts['commissions']} lots commissioned, {counts['productions']} produced, "
                f"{counts['steps']} transformations and bindings, {counts['handoffs']} hand-offs"
            )
    except Mine2CellError as exc:
        raise _fail(exc) from None


@app.command()
def deploy(
    data_dir: DataDir = None,
    rpc_url: RpcUrl = None,
    passphrase_file: PassphraseFile = None,
) -> None:
    """Deploy a new ledger with the governor and relayer keys and remember it for this chain
    (the embedded node gets one on first use without asking)."""
    settings = _settings(data_dir, rpc_url)
    try:
        if settings.rpc_url is None:
            raise InvalidInput(
                "rpc-url", "the embedded node deploys its ledger on first use; give --rpc-url"
            )
        with Service(
            settings.model_copy(update={"ledger_address": None}),
            passphrase=lambda: _passphrase(settings, passphrase_file, confirm=False),
            notify=lambda message: err_console.print(message, highlight=False),
            new_ledger=True,
        ):
            pass  # opening the service deployed the ledger and remembered it
    except Mine2CellError as exc:
        raise _fail(exc) from None


# -- audit ---------------------------------------------------------------------------------------

audit_app = typer.Typer(
    help="Verify a passport's chain against a node, without trusting the service.",
    no_args_is_help=True,
)
app.add_typer(audit_app, name="audit")


def _read_compare(source: str) -> object:
    """The provenance report to compare with: a file, or a URL that serves it."""
    if source.startswith(("http://", "https://")):
        try:
            response = httpx.get(source, timeout=60, follow_redirects=True)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise InvalidInput("compare", f"cannot read {source}: {exc}") from None
        return load_report(source, response.content)
    try:
        return load_report(source, Path(source).read_bytes())
    except OSError as exc:
        raise InvalidInput("compare", f"cannot read {source}: {exc.strerror}") from None


def _report_paths(
    settings: Settings, passport: bytes, json_path: Path | None, html: Path | None
) -> tuple[Path, Path]:
    if json_path is not None and html is not None:
        return json_path, html
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", show_id(passport))[:60]
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = settings.data_dir / "audits"
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / f"{stem}-{stamp}"
    return json_path or base.with_suffix(".json"), html or base.with_suffix(".html")


def _audit_progress() -> Callable[[str], None] | None:
    """Each phase of a long audit on a terminal (scripts get the report, not the chatter)."""
    if not err_console.is_terminal:
        return None
    return lambda message: err_console.print(f"audit: {message}", style="dim", highlight=False)


@audit_app.command("verify")
def audit_verify(
    passport: Annotated[str, typer.Argument(help="Passport id: text, URI or 0x id.")],
    compare: Annotated[
        str | None,
        typer.Option(
            "--compare",
            help="The service's provenance report to compare with, field by field: a file "
            "(`passport show --json`) or a URL serving it.",
        ),
    ] = None,
    chain_id: Annotated[
        int | None, typer.Option("--chain-id", help="The chain the ledger must be on.")
    ] = None,
    confirmations: Annotated[
        int | None,
        typer.Option(
            "--confirmations",
            help="Blocks every event must be under (default: MINE2CELL_CONFIRMATIONS).",
        ),
    ] = None,
    from_block: Annotated[
        int | None,
        typer.Option(
            "--from-block",
            help="Read logs from this block (default: the deployment's, when this data "
            "directory deployed the ledger, else 0).",
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Write the JSON report here (default: DATA_DIR/audits/)."),
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Write the one-page HTML report here (default: beside it)."),
    ] = None,
    attest: Annotated[
        bool,
        typer.Option(
            "--attest",
            help="Record the verdict on the ledger with the JSON report's hash, signed --as an "
            "auditor's key.",
        ),
    ] = False,
    as_: Annotated[
        str | None, typer.Option("--as", help="The auditor's key (with --attest).")
    ] = None,
    data_dir: DataDir = None,
    rpc_url: RpcUrl = None,
    ledger: Ledger = None,
    passphrase_file: PassphraseFile = None,
    json_out: JsonOut = False,
) -> None:
    """Verify a passport's raw-material chain against a node: the ledger's code, every event's
    inclusion, signature and signer's role, custody, quantities, mass balance, origins and
    corrections; recompute the figures from the chain and compare them with the service's.
    Exits 0 only when every check passes."""
    opts = _Options(data_dir, rpc_url, ledger, passphrase_file, json_out)
    try:
        if attest and as_ is None:
            raise InvalidInput("as", "--attest needs --as KEY, the auditor's key that signs")
        passport_id = parse_id(passport, "passport")
        expected = _read_compare(compare) if compare is not None else None
        with _service(opts) as service:
            settings = service.settings
            result = verify(
                service.w3,
                service.ledger.address,
                passport_id,
                rpc_url=service.rpc_url,
                high_risk_countries=settings.high_risk_country_set,
                confirmations=settings.confirmations if confirmations is None else confirmations,
                expected_chain_id=chain_id,
                from_block=service.deployment_block() if from_block is None else from_block,
                compare=expected,
                compare_source=compare,
                progress=_audit_progress(),
            )
            document = result.to_json()
            json_path, html_path = _report_paths(settings, passport_id, report, html)
            body, digest = write_reports(document, json_path, html_path)
            if json_out:
                print(body.decode())
            else:
                print_verification(console, result)
                console.print(
                    f"Report: {json_path} (keccak256 0x{digest.hex()}), {html_path}",
                    highlight=False,
                )
            if attest:
                assert as_ is not None
                verdict = PASS if result.passed else FAIL
                accepted = service.client(as_).attest(
                    passport_id, verdict=verdict, report_hash=digest
                )
                statuses = service.settle([accepted.event_id])
                status = statuses.get(accepted.event_id) or accepted.status
                if not json_out:
                    _print_statuses(service, [status], as_json=False)
                if status.state is State.REJECTED:
                    raise typer.Exit(code=1)
    except Mine2CellError as exc:
        raise _fail(exc) from None
    except OSError as exc:
        raise _fail(InvalidInput("report", f"cannot write the report: {exc}")) from None
    if not result.passed:
        raise typer.Exit(code=1)


@audit_app.command("show")
def audit_show(
    passport: Annotated[str, typer.Argument(help="Passport id: text, URI or 0x id.")],
    report: Annotated[
        Path | None,
        typer.Option("--report", help="A JSON report to check against the recorded hashes."),
    ] = None,
    data_dir: DataDir = None,
    rpc_url: RpcUrl = None,
    ledger: Ledger = None,
    json_out: JsonOut = False,
) -> None:
    """The auditors' attestations of a passport on the ledger; with --report, whether that
    report file is the one an attestation recorded (exit 1 if none did)."""
    opts = _Options(data_dir, rpc_url, ledger, None, json_out)
    try:
        passport_id = parse_id(passport, "passport")
        digest = None
        if report is not None:
            try:
                digest = keccak(report.read_bytes())
            except OSError as exc:
                raise InvalidInput("report", f"cannot read {report}: {exc.strerror}") from None
        with _service(opts) as service:
            found = attestations(service.w3, service.ledger.address, passport_id)
    except Mine2CellError as exc:
        raise _fail(exc) from None
    rows = [
        {
            "auditor": log.args["auditor"],
            "verdict": {PASS: "pass", FAIL: "fail"}.get(log.args["verdict"], "?"),
            "report_hash": "0x" + log.args["reportHash"].hex(),
            "block_number": log.block_number,
            "timestamp": timestamp,
            "tx_hash": "0x" + log.tx_hash.hex(),
            "event_id": "0x" + log.args["eventId"].hex(),
        }
        for log, timestamp in found
    ]
    matching = [r for r in rows if digest is not None and r["report_hash"] == "0x" + digest.hex()]
    if json_out:
        payload: dict[str, object] = {"passport": "0x" + passport_id.hex(), "attestations": rows}
        if digest is not None:
            payload["report"] = {"keccak256": "0x" + digest.hex(), "attested_by": matching}
        print(json.dumps(payload, indent=2))
    else:
        if not rows:
            console.print(f"passport {show_id(passport_id)} has no attestation", highlight=False)
        for r in rows:
            when = datetime.datetime.fromtimestamp(int(str(r["timestamp"])), datetime.UTC)
            console.print(
                f"{str(r['verdict']).upper():<4} by {r['auditor']} at block {r['block_number']} "
                f"({when:%Y-%m-%d %H:%M} UTC), report {r['report_hash']}, tx {r['tx_hash']}",
                highlight=False,
            )
        if digest is not None:
            if matching:
                console.print(
                    f"{report}: keccak256 0x{digest.hex()} is the report attested at block "
                    + ", ".join(str(r["block_number"]) for r in matching),
                    highlight=False,
                )
            else:
                console.print(
                    f"{report}: keccak256 0x{digest.hex()} matches no attestation of this passport",
                    highlight=False,
                )
    if digest is not None and not matching:
        raise typer.Exit(code=1)


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    data_dir: DataDir = None,
    rpc_url: RpcUrl = None,
    ledger: Ledger = None,
    passphrase_file: PassphraseFile = None,
) -> None:
    """Serve the HTTP API (/v1, OpenAPI at /docs): relays the outbox and follows the chain."""
    opts = _Options(data_dir, rpc_url, ledger, passphrase_file, False)
    settings = opts.settings()
    try:
        # Asked before the server starts when the relayer's key is here; without it the service
        # serves reads only and asks only if it must create keys (a first deployment).
        if _keystore(settings).has(settings.relayer_key):
            passphrase = _passphrase(settings, passphrase_file, confirm=False)
            application = create_app(settings, passphrase=lambda: passphrase)
        else:
            application = create_app(
                settings, passphrase=lambda: _passphrase(settings, passphrase_file, confirm=True)
            )
    except Mine2CellError as exc:
        raise _fail(exc) from None
    # uvicorn stops gracefully on SIGTERM, then raises the signal again, whose default action
    # would end the process with status -15 (143 in a shell): a completed stop exits 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    # The service's own loggers (relay, index, API) on uvicorn's handler, with their level.
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["loggers"]["mine2cell"] = {"handlers": ["default"], "level": "INFO"}
    uvicorn.run(
        StartRefusals(application), host=host, port=port, log_level="info", log_config=log_config
    )


@export_app.command("untp")
def export_untp(
    lot: Annotated[
        str | None, typer.Option("--lot", help="A lot: the events of its history.")
    ] = None,
    passport: Annotated[
        str | None,
        typer.Option("--passport", help="A passport: the events of its upstream chain."),
    ] = None,
    dpp: Annotated[
        bool,
        typer.Option(
            "--dpp",
            help="The passport's Digital Product Passport (materials by origin country with "
            "mass and recycled fractions, footprint) instead of its events.",
        ),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", help="Write the document to this file.", dir_okay=False),
    ] = None,
    data_dir: DataDir = None,
    rpc_url: RpcUrl = None,
    ledger: Ledger = None,
) -> None:
    """UN Transparency Protocol documents: Digital Traceability Events of a lot or of a
    passport's chain, each with its on-chain evidence, or with --dpp the traceability and
    material-provenance part of a passport's Digital Product Passport (W3C credentials)."""
    from mine2cell.interop.untp import (
        LedgerRef,
        document_bytes,
        lot_dte,
        passport_dpp,
        passport_dte,
    )

    opts = _Options(data_dir, rpc_url, ledger, None, True)
    try:
        if (lot is None) == (passport is None):
            raise InvalidInput("lot", "give either --lot LOT or --passport PASSPORT")
        if dpp and passport is None:
            raise InvalidInput("dpp", "a DPP is a passport's: give --passport PASSPORT")
        with _service(opts) as service:
            _sync(service, quiet=True)
            store = service.store()
            source = LedgerRef(service.ledger.domain.chain_id, service.ledger.address)
            if lot is not None:
                lot_id = parse_id(lot, "lot")
                document = lot_dte(store, lot_id, ledger=source)
                if document is None:
                    raise InvalidInput(
                        "lot", f"lot {show_id(lot_id)} is not in the index of this ledger"
                    )
            else:
                assert passport is not None
                passport_id = parse_id(passport, "passport")
                document = (
                    passport_dpp(
                        store,
                        passport_id,
                        ledger=source,
                        high_risk_countries=service.settings.high_risk_country_set,
                    )
                    if dpp
                    else passport_dte(store, passport_id, ledger=source)
                )
                if document is None:
                    raise InvalidInput(
                        "passport", f"passport {show_id(passport_id)} is not bound on this ledger"
                    )
        body = document_bytes(document)
        if output is None:
            print(body.decode())
            return
        try:
            output.write_bytes(body)
        except OSError as exc:
            raise InvalidInput("output", f"cannot write {output}: {exc.strerror}") from None
    except Mine2CellError as exc:
        raise _fail(exc) from None


@export_app.command("epcis")
def export_epcis(
    lot: Annotated[str | None, typer.Option("--lot", help="A lot: its history.")] = None,
    passport: Annotated[
        str | None,
        typer.Option("--passport", help="A passport: every event of its upstream chain."),
    ] = None,
    participant: Annotated[
        str | None,
        typer.Option(
            "--participant",
            help="A participant (address or key name): the events it signed or was a party to.",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--from", help="With --participant: events at or after this time (YYYY-MM-DD, UTC)."
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--to", help="With --participant: events before this time (YYYY-MM-DD)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", help="Write the document to this file.", dir_okay=False),
    ] = None,
    data_dir: DataDir = None,
    rpc_url: RpcUrl = None,
    ledger: Ledger = None,
) -> None:
    """A GS1 EPCIS 2.0 document (JSON-LD) of a lot, of a passport's whole upstream chain, or of a
    participant's events in a time range, each event with its on-chain evidence."""
    from mine2cell.interop.epcis import LedgerRef, document
    from mine2cell.interop.records import (
        lot_records,
        parse_instant,
        participant_scope,
        passport_records,
    )

    opts = _Options(data_dir, rpc_url, ledger, None, True)
    try:
        if sum(x is not None for x in (lot, passport, participant)) != 1:
            raise InvalidInput("lot", "give one of --lot, --passport or --participant")
        if participant is None and (since is not None or until is not None):
            raise InvalidInput("from", "--from and --to bound a --participant export")
        start = parse_instant(since, "from") if since is not None else 0
        end = parse_instant(until, "to") if until is not None else None
        with _service(opts) as service:
            _sync(service, quiet=True)
            store = service.store()
            if lot is not None:
                lot_id = parse_id(lot, "lot")
                records = lot_records(store, lot_id)
                if records is None:
                    raise InvalidInput(
                        "lot", f"lot {show_id(lot_id)} is not in the index of this ledger"
                    )
            elif passport is not None:
                passport_id = parse_id(passport, "passport")
                records = passport_records(store, passport_id)
                if records is None:
                    raise InvalidInput(
                        "passport", f"passport {show_id(passport_id)} is not bound on this ledger"
                    )
            else:
                assert participant is not None
                account = service.account(participant)
                if account not in store.participants([account]):
                    raise InvalidInput(
                        "participant", f"{account} was never accredited on this ledger"
                    )
                records = participant_scope(
                    store,
                    service.w3,
                    service.ledger.address,
                    account,
                    from_block=service.deployment_block(),
                    since=start,
                    until=end,
                )
            source = LedgerRef(service.ledger.domain.chain_id, service.ledger.address)
            body = json.dumps(document(records, source, created=int(time.time())), indent=2)
        if output is None:
            print(body)
            return
        try:
            output.write_text(body + "\n", encoding="utf-8")
        except OSError as exc:
            raise InvalidInput("output", f"cannot write {output}: {exc.strerror}") from None
    except Mine2CellError as exc:
        raise _fail(exc) from None


token_app = typer.Typer(
    help="Access tokens of the HTTP service: read (facility and volume detail) or hosted (the "
    "service signs with a key it holds)."
)
app.add_typer(token_app, name="token")


@token_app.command("create")
def token_create(
    label: Annotated[str, typer.Argument(help="Whom the token is for (shown in `token list`).")],
    read: Annotated[bool, typer.Option("--read", help="A read token (the default).")] = False,
    hosted: Annotated[
        str | None,
        typer.Option("--hosted", help="A hosted token: the service signs with this key file."),
    ] = None,
    data_dir: DataDir = None,
    json_out: JsonOut = False,
) -> None:
    """Create a token and print it once: only its hash is kept, so it cannot be shown again."""
    settings = _settings(data_dir, None)
    try:
        if read and hosted is not None:
            raise InvalidInput("hosted", "give --read or --hosted KEY, not both")
        if hosted is not None:
            _keystore(settings).entry(hosted)  # the key must be there to sign with
        with closing(TokenStore(settings.access_db)) as tokens:
            token, text = tokens.create(
                "read" if hosted is None else "hosted", label, key_name=hosted
            )
    except Mine2CellError as exc:
        raise _fail(exc) from None
    if json_out:
        print(json.dumps({**token.to_json(), "token": text}))
        return
    console.print(f"{token.tier} token {token.id} for {token.label!r}:", highlight=False)
    print(text)
    err_console.print(
        "Shown once: store it in a secret store. Send it as 'Authorization: Bearer <token>'.",
        style="dim",
    )


@token_app.command("list")
def token_list(data_dir: DataDir = None, json_out: JsonOut = False) -> None:
    """The tokens: id, tier, key, label, created and revoked (never the secrets)."""
    settings = _settings(data_dir, None)
    try:
        with closing(TokenStore(settings.access_db)) as tokens:
            found = tokens.all()
    except Mine2CellError as exc:
        raise _fail(exc) from None
    if json_out:
        print(json.dumps([t.to_json() for t in found], indent=2))
        return
    if not found:
        console.print("no tokens; create one with `mine2cell token create --read LABEL`")
    for token in found:
        state = "revoked" if token.revoked_at is not None else "active"
        key = f" key {token.key_name}" if token.key_name else ""
        console.print(f"{token.id}  {token.tier}{key}  {state}  {token.label}", highlight=False)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (8 hex digits).")],
    data_dir: DataDir = None,
) -> None:
    """Revoke a token: the service refuses it from its next request."""
    settings = _settings(data_dir, None)
    try:
        with closing(TokenStore(settings.access_db)) as tokens:
            token = tokens.revoke(token_id)
    except Mine2CellError as exc:
        raise _fail(exc) from None
    console.print(f"revoked {token.tier} token {token.id} ({token.label})", highlight=False)


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)


def main() -> None:
    app()
