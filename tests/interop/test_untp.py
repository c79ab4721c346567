"""UNTP exports: Digital Traceability Events of lots and passports, and the traceability and
material-provenance part of a passport's Digital Product Passport, from the index of a real chain
(the embedded anvil node), through the module, the API (read tier) and the CLI.

Every document is validated against the UNTP JSON Schemas (vendored in tests/data/untp; draft
2020-12, internal $refs), with the "uri" and "date-time" formats checked too. The chain is the
recorded one of tests/recorded.py, extended here with a recycler, a second refining, a second
passport, a shipment rejected and one recalled, and a correction, so the figures below are known
exactly:

    kolwezi    KOL-1 co-hydroxide 12 t (CD)  -> kokkola T1: KOL-1 12 t -> SUL-1 20 t
               KOL-2 co-hydroxide  2 t (CD)  -> kokkola T2: KOL-2 1.5 t + BM-1 3 t -> SUL-2 4 t
    hydrovolt  BM-1  black mass 3 t post-consumer (NO)
    skelleftea PASS-1: SUL-1 45 kg (recorded);  PASS-2: SUL-1 10 kg + SUL-2 20 kg
    kokkola    ships KOL-2's remaining 500 kg to skelleftea, who rejects it; ships it again and
               recalls it; the auditor declares KOL-2's first shipment erroneous (incorrect data)

PASS-2 holds 10/20,000 kg of T1 (6 kg of KOL-1) and 20/4,000 of T2 (7.5 kg of KOL-2, 15 kg of
BM-1): 28.5 kg of cobalt origin mass, 13.5 kg from CD (9/19, mined) and 15 kg from NO (10/19,
recycled). Footprint: 4.8 kg (KOL-1) + 15.5 (T1) + 6 (KOL-2) + 3 (BM-1) + 40 (T2) + 400 (binding)
= 469.3 kg CO2e.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator, FormatChecker, validators

from mine2cell.access.tokens import TokenStore
from mine2cell.api.app import create_app
from mine2cell.codes import Feedstock, Role
from mine2cell.config import Settings
from mine2cell.ids import parse_id
from mine2cell.index.store import Store
from mine2cell.interop import untp
from mine2cell.interop.untp import LedgerRef
from mine2cell.materials import material
from mine2cell.provenance.documents import passport_document
from mine2cell.provenance.model import EventRef
from mine2cell.provenance.report import fraction_from_json
from mine2cell.relay.outbox import State
from mine2cell.service import Service
from mine2cell.signing.eip712 import Input, LotId, Output, text32
from tests.api.support import problem
from tests.e2e.cli_support import PASSPHRASE, Cli, make_keys
from tests.recorded import YEAR, Template, record_chain

pytestmark = pytest.mark.anvil

SCHEMAS = Path(__file__).parents[1] / "data" / "untp"
SHARED = Path(__file__).parents[2].parent / "shared" / "data" / "untp"
CBV = "https://ref.gs1.org/cbv/"
M2C = "https://mine2cell.example/epcis/"  # the EPCIS export's extension vocabulary
LOTS = ("KOL-1", "KOL-2", "BM-1", "SUL-1", "SUL-2")
PASSPORTS = ("PASS-1", "PASS-2")

# -- validation ------------------------------------------------------------------------------------

# RFC 3986 absolute URI: a scheme, then unreserved, reserved or percent-encoded characters only.
_URI = re.compile(
    r"^[A-Za-z][A-Za-z0-9+.\-]*:(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?#\[\]]|%[0-9A-Fa-f]{2})+$"
)
# RFC 3339 date-time (the schemas' own pattern for validFrom).
_DATE_TIME = re.compile(
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?"
    r"(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)
FORMATS = FormatChecker()


@FORMATS.checks("uri")
def _is_uri(value: object) -> bool:
    return not isinstance(value, str) or bool(_URI.match(value))


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    datetime.fromisoformat(value)  # also a real date: no 31 February
    return bool(_DATE_TIME.match(value))


def _validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    assert validators.validator_for(schema) is Draft202012Validator  # the $schema they declare
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FORMATS)


DTE_SCHEMA = _validator("untp-dte-schema.json")
DPP_SCHEMA = _validator("untp-dpp-schema.json")
TRANSFORMATION_SCHEMA = _validator("TransformationEvent-schema.json")


def assert_valid(validator: Draft202012Validator, document: object) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
    assert not errors, "\n".join(errors)


def assert_dte(document: dict[str, Any]) -> None:
    assert_valid(DTE_SCHEMA, document)
    for event in document["credentialSubject"]:
        if "TransformationEvent" in event["type"]:
            assert_valid(TRANSFORMATION_SCHEMA, event)


# -- the chain -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chain:
    data_dir: Path
    ledger: str
    accounts: dict[str, str]
    first_kol2_shipment: bytes  # the event the auditor declares erroneous
    correction: bytes


def _extend(data_dir: Path) -> tuple[dict[str, str], bytes, bytes]:
    """Add the recycler, T2, PASS-2, a rejected and a recalled shipment and a correction."""
    make_keys(data_dir, ["hydrovolt"])
    settings = Settings(data_dir=data_dir, rpc_url=None, ledger_address=None)
    with Service(settings, passphrase=lambda: PASSPHRASE) as service:

        def settle(*accepted: Any) -> list[bytes]:
            ids = [a.event_id for a in accepted]
            statuses = service.settle(ids)
            assert all(statuses[i].state is State.CONFIRMED for i in ids), statuses
            return ids

        governor, auditor = service.client("governor"), service.client("auditor")
        mine, recycler = service.client("kolwezi"), service.client("hydrovolt")
        refiner, cells = service.client("kokkola"), service.client("skelleftea")
        names = ("kolwezi", "hydrovolt", "kokkola", "skelleftea")
        accounts: dict[str, str] = {name: service.account(name) for name in names}
        recycler_account = accounts["hydrovolt"]
        settle(
            governor.accredit(
                recycler_account, roles=Role.RECYCLER, facility=text32("NO-HYDROVOLT"), country="NO"
            )
        )
        settle(
            governor.certify(
                recycler_account,
                scheme=text32("RMAP"),
                valid_until=int(time.time()) + YEAR,
                document_hash=bytes(32),
            )
        )
        kol2, bm1, sul2 = (LotId(parse_id(t)) for t in ("KOL-2", "BM-1", "SUL-2"))
        settle(
            mine.commission(
                kol2,
                material=material("co-hydroxide").code,
                quantity=2_000_000,
                footprint=1_600_000,
            ),
            recycler.commission(
                bm1,
                material=material("black-mass").code,
                quantity=3_000_000,
                feedstock=Feedstock.POST_CONSUMER,
                footprint=600_000,
            ),
        )
        (first_shipment, _) = settle(
            mine.ship(kol2, accounts["kokkola"]), recycler.ship(bm1, accounts["kokkola"])
        )
        settle(refiner.receive(kol2), refiner.receive(bm1))
        settle(
            refiner.transform(
                [Input(kol2, 1_500_000), Input(bm1, 3_000_000)],
                [Output(sul2, material("co-sulfate").code, 4_000_000)],
                footprint=8_000_000,
            )
        )
        settle(refiner.ship(sul2, accounts["skelleftea"]))
        settle(cells.receive(sul2))
        settle(
            cells.bind_passport(
                parse_id("PASS-2", "passport"),
                [Input(LotId(parse_id("SUL-1")), 10_000), Input(sul2, 20_000)],
                footprint=400_000,
            ),
            refiner.ship(kol2, accounts["skelleftea"]),
        )
        settle(cells.reject(kol2))
        settle(refiner.ship(kol2, accounts["skelleftea"]))
        settle(refiner.recall(kol2))
        (correction,) = settle(auditor.correct(first_shipment, reason=2))
    return accounts, first_shipment, correction


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    template: Template = record_chain(tmp_path_factory.mktemp("untp-template") / "data")
    accounts, shipment, correction = _extend(template.data_dir)
    return Chain(template.data_dir, template.ledger, accounts, shipment, correction)


def _copy(chain: Chain, tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    data_dir = tmp_path_factory.mktemp(name) / "data"
    shutil.copytree(chain.data_dir, data_dir)
    return data_dir


@pytest.fixture(scope="module")
def api_dir(chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _copy(chain, tmp_path_factory, "untp-api")


@pytest.fixture(scope="module")
def client(chain: Chain, api_dir: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=api_dir, rpc_url=None, ledger_address=chain.ledger)
    with TestClient(create_app(settings, passphrase=lambda: PASSPHRASE)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def reader(api_dir: Path) -> dict[str, str]:
    """Headers with a read token."""
    with closing(TokenStore(api_dir / "access.db")) as tokens:
        _, text = tokens.create("read", "untp tests")
    return {"Authorization": f"Bearer {text}"}


@pytest.fixture(scope="module")
def service(client: TestClient) -> Service:
    """The app's own service: its index is synced when the app starts."""
    found: Service = client.app.state.runtime.service  # type: ignore[attr-defined]
    return found


@pytest.fixture(scope="module")
def store(service: Service) -> Store:
    return service.store()


@pytest.fixture(scope="module")
def ledger(service: Service) -> LedgerRef:
    return LedgerRef(service.ledger.domain.chain_id, service.ledger.address)


@pytest.fixture(scope="module")
def lot_documents(store: Store, ledger: LedgerRef) -> dict[str, dict[str, Any]]:
    found = {}
    for lot in LOTS:
        document = untp.lot_dte(store, parse_id(lot), ledger=ledger)
        assert document is not None, lot
        found[lot] = document
    return found


@pytest.fixture(scope="module")
def passport_documents(store: Store, ledger: LedgerRef) -> dict[str, dict[str, Any]]:
    found = {}
    for passport in PASSPORTS:
        document = untp.passport_dte(store, parse_id(passport, "passport"), ledger=ledger)
        assert document is not None, passport
        found[passport] = document
    return found


@pytest.fixture(scope="module")
def dpp_documents(store: Store, ledger: LedgerRef) -> dict[str, dict[str, Any]]:
    found = {}
    for passport in PASSPORTS:
        document = untp.passport_dpp(
            store, parse_id(passport, "passport"), ledger=ledger, high_risk_countries=frozenset()
        )
        assert document is not None, passport
        found[passport] = document
    return found


# -- reading documents -----------------------------------------------------------------------------


def _events(document: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in document["credentialSubject"] if kind in e["type"]]


def _grams(items: list[dict[str, Any]]) -> dict[str, int]:
    return {item["productId"]: item["quantity"] for item in items}


def _lot(text: str) -> str:
    return f"urn:mine2cell:lot:{text}"


def _original(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in document["credentialSubject"] if "errorDeclaration" not in e]


def _step_name(biz_step: str) -> str:
    return biz_step.removeprefix(f"{CBV}BizStep-").removeprefix(f"{M2C}BizStep-")


def _hand_offs(document: dict[str, Any], lot: str) -> list[tuple[str, str, int]]:
    return [
        (_step_name(e["bizStep"]), e["action"], e["quantityList"][0]["quantity"])
        for e in _original(document)
        if "TransactionEvent" in e["type"] and e["quantityList"][0]["productId"] == _lot(lot)
    ]


# -- schemas ---------------------------------------------------------------------------------------


def test_the_vendored_schemas_are_the_shared_ones() -> None:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is not beside the checkout")
    for name in ("untp-dte-schema.json", "untp-dpp-schema.json", "TransformationEvent-schema.json"):
        assert (SCHEMAS / name).read_bytes() == (SHARED / name).read_bytes(), name


@pytest.mark.parametrize("lot", LOTS)
def test_a_lot_dte_validates_against_the_untp_schema(
    lot: str, lot_documents: dict[str, dict[str, Any]]
) -> None:
    assert_dte(lot_documents[lot])


@pytest.mark.parametrize("passport", PASSPORTS)
def test_a_passport_dte_and_dpp_validate_against_the_untp_schemas(
    passport: str,
    passport_documents: dict[str, dict[str, Any]],
    dpp_documents: dict[str, dict[str, Any]],
) -> None:
    assert_dte(passport_documents[passport])
    assert_valid(DPP_SCHEMA, dpp_documents[passport])


def test_the_validation_refuses_what_the_schemas_refuse(
    lot_documents: dict[str, dict[str, Any]], dpp_documents: dict[str, dict[str, Any]]
) -> None:
    def broken(document: dict[str, Any], change: Any) -> dict[str, Any]:
        copy: dict[str, Any] = json.loads(json.dumps(document))
        change(copy)
        return copy

    dte, dpp = lot_documents["KOL-1"], dpp_documents["PASS-2"]
    cases = [
        broken(dte, lambda d: d.pop("issuer")),
        broken(dte, lambda d: d["credentialSubject"][0]["quantityList"][0].update(quantity="12")),
        broken(dte, lambda d: d["credentialSubject"][0]["quantityList"][0].update(lot="KOL-1")),
        broken(dte, lambda d: d["credentialSubject"][0].update(type=["Event"])),
        broken(dte, lambda d: d["credentialSubject"][0].update(eventTime="2026-02-31T00:00:00Z")),
        broken(dte, lambda d: d["credentialSubject"][1].update(sourceParty=None)),
        broken(
            dte, lambda d: d["credentialSubject"][0]["quantityList"][0].update(productId="lot 1")
        ),
    ]
    for document in cases:
        assert list(DTE_SCHEMA.iter_errors(document))
    materials = dpp["credentialSubject"]["materialsProvenance"]
    assert list(DPP_SCHEMA.iter_errors(broken(dpp, lambda d: d["@context"].reverse())))
    assert materials and list(
        DPP_SCHEMA.iter_errors(
            broken(dpp, lambda d: d["credentialSubject"]["materialsProvenance"][0].pop("name"))
        )
    )


# -- DTE: events, quantities, evidence -------------------------------------------------------------


def test_a_mined_lot_states_its_commissioning_custody_and_refining_in_grams(
    lot_documents: dict[str, dict[str, Any]], chain: Chain
) -> None:
    document = lot_documents["KOL-1"]
    (commission,) = _events(document, "ObjectEvent")
    (refining,) = _events(document, "TransformationEvent")

    assert commission["bizStep"] == f"{CBV}BizStep-commissioning" and commission["action"] == "add"
    assert commission["bizLocation"] == "urn:mine2cell:facility:CD-KOLWEZI-1"
    assert commission["quantityList"] == [
        {
            "productId": _lot("KOL-1"),
            "productName": "Cobalt hydroxide, lot KOL-1",
            "quantity": 12_000_000,
            "uom": "GRM",
        }
    ]
    assert _hand_offs(document, "KOL-1") == [
        ("shipping", "add", 12_000_000),
        ("receiving", "observe", 12_000_000),
    ]
    shipment = _events(document, "TransactionEvent")[0]
    kolwezi, kokkola = (f"did:pkh:eip155:31337:{chain.accounts[n]}" for n in ("kolwezi", "kokkola"))
    assert (shipment["sourceParty"], shipment["destinationParty"]) == (kolwezi, kokkola)
    assert _grams(refining["inputQuantityList"]) == {_lot("KOL-1"): 12_000_000}
    assert _grams(refining["outputQuantityList"]) == {_lot("SUL-1"): 20_000_000}
    assert refining["processType"] == "Processing: Cobalt hydroxide to Cobalt sulfate"


def test_a_hand_off_states_what_the_lot_held_after_its_consumptions(
    lot_documents: dict[str, dict[str, Any]], chain: Chain
) -> None:
    document = lot_documents["KOL-2"]

    assert _hand_offs(document, "KOL-2") == [
        ("shipping", "add", 2_000_000),
        ("receiving", "observe", 2_000_000),
        ("shipping", "add", 500_000),
        ("rejecting", "delete", 500_000),  # returned to the sender
        ("shipping", "add", 500_000),
        ("void_shipping", "delete", 500_000),  # recalled
    ]
    rejected, recalled = (e for e in _original(document) if e.get("action") == "delete")
    assert rejected["disposition"] == f"{CBV}Disp-returned" and "disposition" not in recalled
    kokkola, skelleftea = (
        f"did:pkh:eip155:31337:{chain.accounts[n]}" for n in ("kokkola", "skelleftea")
    )
    for hand_off in (rejected, recalled):  # a recall names the shipment's recipient
        assert (hand_off["sourceParty"], hand_off["destinationParty"]) == (kokkola, skelleftea)


def test_a_step_is_stated_whole_in_the_dte_of_each_of_its_lots(
    lot_documents: dict[str, dict[str, Any]],
) -> None:
    (refining,) = _events(lot_documents["BM-1"], "TransformationEvent")
    steps = [
        step
        for lot in ("KOL-2", "BM-1", "SUL-2")
        for step in _events(lot_documents[lot], "TransformationEvent")
        if step["id"] == refining["id"]
    ]

    assert len(steps) == 3 and steps[0] == steps[1] == steps[2]
    assert steps[0]["inputQuantityList"] == [
        {
            "productId": _lot("KOL-2"),
            "productName": "Cobalt hydroxide, lot KOL-2",
            "quantity": 1_500_000,
            "uom": "GRM",
        },
        {
            "productId": _lot("BM-1"),
            "productName": "Black mass (battery recycling), lot BM-1",
            "quantity": 3_000_000,
            "uom": "GRM",
        },
    ]
    assert _grams(steps[0]["outputQuantityList"]) == {_lot("SUL-2"): 4_000_000}


def test_bindings_output_the_battery_and_consume_the_bound_grams(
    lot_documents: dict[str, dict[str, Any]],
) -> None:
    bindings = _events(lot_documents["SUL-1"], "TransformationEvent")[1:]

    assert [b["outputEPCList"] for b in bindings] == [
        [{"type": ["Item"], "id": f"urn:mine2cell:passport:{p}", "name": f"Battery, passport {p}"}]
        for p in PASSPORTS
    ]
    assert _grams(bindings[0]["inputQuantityList"]) == {_lot("SUL-1"): 45_000}
    assert _grams(bindings[1]["inputQuantityList"]) == {
        _lot("SUL-1"): 10_000,
        _lot("SUL-2"): 20_000,
    }
    assert bindings[1]["processType"] == "Cell manufacturing: passport binding"
    assert {_step_name(b["bizStep"]) for b in bindings} == {"assembling"}


def _ledger_refs(store: Store) -> dict[bytes, EventRef]:
    """Every event of the chain's lots as the index records it, by event id."""
    found: dict[bytes, EventRef] = {}
    lots = [parse_id(lot) for lot in LOTS]
    for lot in lots:
        for item in store.history(lot):
            if item.kind not in ("produce", "consume"):
                found[item.event.event_id] = item.event
    found.update((eid, step.event) for eid, step in store.downstream(lots).steps.items())
    return found


def test_every_event_carries_its_on_chain_evidence(
    lot_documents: dict[str, dict[str, Any]],
    passport_documents: dict[str, dict[str, Any]],
    store: Store,
    chain: Chain,
) -> None:
    refs = _ledger_refs(store)
    documents = [*lot_documents.values(), *passport_documents.values()]
    events = [e for document in documents for e in _original(document)]

    assert len(events) > 30
    for event in events:
        evidence = event["ledgerEvidence"]
        ref = refs[bytes.fromhex(evidence["eventId"][2:])]
        assert event["id"] == f"urn:mine2cell:event:{evidence['eventId']}"
        assert (evidence["chainId"], evidence["ledger"]) == (31337, chain.ledger)
        assert evidence["transactionHash"] == "0x" + ref.tx_hash.hex()
        assert evidence["blockHash"] == "0x" + ref.block_hash.hex()
        assert (evidence["blockNumber"], evidence["logIndex"]) == (ref.block_number, ref.log_index)
        assert evidence["signer"] == ref.actor
        assert event["eventTime"] == datetime.fromtimestamp(ref.timestamp, UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )


def test_a_correction_restates_the_event_with_its_error_declaration(
    lot_documents: dict[str, dict[str, Any]],
    passport_documents: dict[str, dict[str, Any]],
    chain: Chain,
) -> None:
    for document in (lot_documents["KOL-2"], passport_documents["PASS-2"]):
        shipment_uri = f"urn:mine2cell:event:0x{chain.first_kol2_shipment.hex()}"
        stated = [e for e in document["credentialSubject"] if e["id"] == shipment_uri]

        assert len(stated) == 2 and "errorDeclaration" not in stated[0]
        original, restated = stated
        declaration = restated["errorDeclaration"]
        assert {k: v for k, v in restated.items() if k != "errorDeclaration"} == original
        assert declaration["reason"] == f"{CBV}ER-incorrect_data"
        assert declaration["correctiveEventIDs"] == []
        assert declaration["ledgerEvidence"]["eventId"] == "0x" + chain.correction.hex()
        assert declaration["declarationTime"] >= original["eventTime"]
        assert document["credentialSubject"][-1]["id"] == shipment_uri  # the latest event
        assert document["validFrom"] == declaration["declarationTime"]


def test_a_passport_dte_holds_its_own_chain_only(
    passport_documents: dict[str, dict[str, Any]],
) -> None:
    def outputs(document: dict[str, Any]) -> set[str]:
        found: set[str] = set()
        for step in _events(document, "TransformationEvent"):
            found.update(item["id"] for item in step.get("outputEPCList", []))
            found.update(item["productId"] for item in step.get("outputQuantityList", []))
        return found

    def commissioned(document: dict[str, Any]) -> set[str]:
        return {e["quantityList"][0]["productId"] for e in _events(document, "ObjectEvent")}

    pass1, pass2 = passport_documents["PASS-1"], passport_documents["PASS-2"]
    assert outputs(pass1) == {_lot("SUL-1"), "urn:mine2cell:passport:PASS-1"}
    assert commissioned(pass1) == {_lot("KOL-1")}
    assert outputs(pass2) == {_lot("SUL-1"), _lot("SUL-2"), "urn:mine2cell:passport:PASS-2"}
    assert commissioned(pass2) == {_lot("KOL-1"), _lot("KOL-2"), _lot("BM-1")}
    assert len(_events(pass1, "TransactionEvent")) == 4  # KOL-1 and SUL-1: shipped, received


def test_the_same_records_give_the_same_document(
    store: Store, ledger: LedgerRef, lot_documents: dict[str, dict[str, Any]]
) -> None:
    again = untp.lot_dte(store, parse_id("KOL-2"), ledger=ledger)

    assert again is not None
    assert untp.document_bytes(again) == untp.document_bytes(lot_documents["KOL-2"])
    assert lot_documents["KOL-2"]["id"] != lot_documents["KOL-1"]["id"]
    assert lot_documents["KOL-2"]["id"].startswith("urn:uuid:")


# -- DPP: materials, fractions, footprint ----------------------------------------------------------


def _material_name(element: str | None) -> str:
    return "Material of no named element" if element is None else element.capitalize()


def test_the_dpp_states_materials_by_origin_country_with_exact_fractions(
    dpp_documents: dict[str, dict[str, Any]],
) -> None:
    materials = dpp_documents["PASS-2"]["credentialSubject"]["materialsProvenance"]

    assert materials == [
        {
            "type": ["Material"],
            "name": "Cobalt",
            "originCountry": "NO",
            "massFraction": float(Fraction(10, 19)),
            "recycledMassFraction": 1.0,
        },
        {
            "type": ["Material"],
            "name": "Cobalt",
            "originCountry": "CD",
            "massFraction": float(Fraction(9, 19)),
            "recycledMassFraction": 0.0,
        },
    ]
    single = dpp_documents["PASS-1"]["credentialSubject"]["materialsProvenance"]
    assert [(m["originCountry"], m["massFraction"], m["recycledMassFraction"]) for m in single] == [
        ("CD", 1.0, 0.0)
    ]


@pytest.mark.parametrize("passport", PASSPORTS)
def test_the_dpp_fractions_are_the_reports_exact_shares(
    passport: str, dpp_documents: dict[str, dict[str, Any]], store: Store
) -> None:
    subject = dpp_documents[passport]["credentialSubject"]
    document = passport_document(
        store, parse_id(passport, "passport"), high_risk_countries=frozenset()
    )
    assert document is not None
    report = json.loads(document)
    expected = [
        (
            _material_name(element["element"]),
            country["country"],
            float(fraction_from_json(element["share"]) * fraction_from_json(country["share"])),
        )
        for element in report["elements"]
        for country in element["countries"]
    ]

    assert [
        (m["name"], m["originCountry"], m["massFraction"]) for m in subject["materialsProvenance"]
    ] == expected
    # Each fraction is the double nearest the exact share: within half a unit in the last place.
    total = sum((Fraction(m["massFraction"]) for m in subject["materialsProvenance"]), Fraction())
    assert abs(total - 1) <= Fraction(len(expected), 2**53)
    # The recycled mass, summed back over countries, is the report's per-element recycled share.
    for element in report["elements"]:
        name = _material_name(element["element"])
        parts = [m for m in subject["materialsProvenance"] if m["name"] == name]
        recycled = sum(
            (Fraction(m["massFraction"]) * Fraction(m["recycledMassFraction"]) for m in parts),
            Fraction(),
        )
        share = fraction_from_json(element["share"])
        exact = share * fraction_from_json(element["recycled"]["total"])
        assert abs(recycled - exact) <= Fraction(4 * len(parts), 2**53)
    recycled_content = fraction_from_json(report["recycled"]["total"])
    assert subject["circularityScorecard"]["recycledContent"] == float(recycled_content)
    footprint = fraction_from_json(report["footprint"]["total"])
    assert subject["emissionsScorecard"]["carbonFootprint"] == float(footprint / 1000)


def test_the_dpp_names_the_battery_its_maker_and_its_footprint(
    dpp_documents: dict[str, dict[str, Any]], chain: Chain
) -> None:
    credential = dpp_documents["PASS-2"]
    subject = credential["credentialSubject"]
    maker = f"did:pkh:eip155:31337:{chain.accounts['skelleftea']}"

    assert subject["product"]["id"] == "urn:mine2cell:passport:PASS-2"
    assert subject["product"]["serialNumber"] == "PASS-2" and subject["granularityLevel"] == "item"
    assert subject["product"]["producedByParty"]["id"] == maker
    assert subject["product"]["producedAtFacility"]["id"] == "urn:mine2cell:facility:SE-SKELLEFTEA"
    assert subject["product"]["countryOfProduction"] == "SE"
    assert subject["emissionsScorecard"] == {
        "type": ["EmissionsPerformance"],
        "carbonFootprint": 469.3,
        "declaredUnit": "EA",
        "operationalScope": "CradleToGate",
        "primarySourcedRatio": 1.0,
    }
    assert subject["circularityScorecard"]["recycledContent"] == float(Fraction(10, 19))
    assert subject["ledgerEvidence"]["signer"] == chain.accounts["skelleftea"]
    assert credential["issuer"]["id"] == f"did:pkh:eip155:31337:{chain.ledger}"


# -- API -------------------------------------------------------------------------------------------

ROUTES = ("/v1/lots/KOL-2/untp", "/v1/passports/PASS-2/untp", "/v1/passports/PASS-2/untp/dpp")


@pytest.mark.parametrize("route", ROUTES)
def test_a_untp_route_needs_a_read_token(route: str, client: TestClient) -> None:
    body = problem(client.get(route), 401)

    assert body["errors"][0]["field"] == "Authorization"


def test_the_routes_serve_the_documents_of_the_index(
    client: TestClient,
    reader: dict[str, str],
    lot_documents: dict[str, dict[str, Any]],
    passport_documents: dict[str, dict[str, Any]],
) -> None:
    lot = client.get("/v1/lots/KOL-2/untp", headers=reader)
    passport = client.get("/v1/passports/PASS-2/untp", headers=reader)

    assert lot.status_code == passport.status_code == 200
    assert lot.headers["content-type"] == "application/json"
    assert lot.content == untp.document_bytes(lot_documents["KOL-2"])
    assert passport.content == untp.document_bytes(passport_documents["PASS-2"])


def test_the_dpp_route_links_the_dte_by_address_and_hash(
    client: TestClient, reader: dict[str, str]
) -> None:
    response = client.get("/v1/passports/PASS-2/untp/dpp", headers=reader)
    assert response.status_code == 200
    dpp = response.json()
    assert_valid(DPP_SCHEMA, dpp)
    (trace,) = dpp["credentialSubject"]["traceabilityInformation"]
    (link,) = trace["traceabilityEvent"]

    assert link["linkURL"].startswith("http://testserver/v1/passports/0x")
    linked = client.get(link["linkURL"], headers=reader)
    assert linked.status_code == 200 and "DigitalTraceabilityEvent" in linked.json()["type"]
    assert hashlib.sha256(linked.content).hexdigest() == link["hashDigest"]


@pytest.mark.parametrize(
    ("route", "status", "field"),
    [
        ("/v1/lots/NOPE-1/untp", 404, "lot"),
        ("/v1/passports/NOPE-1/untp", 404, "passport"),
        ("/v1/passports/NOPE-1/untp/dpp", 404, "passport"),
        ("/v1/lots/0x" + "a" * 63 + "/untp", 422, "lot"),
    ],
)
def test_an_unknown_or_malformed_id_is_a_problem_naming_it(
    route: str, status: int, field: str, client: TestClient, reader: dict[str, str]
) -> None:
    body = problem(client.get(route, headers=reader), status)

    assert body["errors"][0]["field"] == field


def test_the_passport_page_links_the_untp_exports_in_its_detail_view(
    client: TestClient, reader: dict[str, str]
) -> None:
    public = client.get("/passports/PASS-2").text
    detail = client.get("/passports/PASS-2", headers=reader).text
    links = re.findall(r'href="(http://testserver/v1/passports/[^"]+/untp(?:/dpp)?)"', detail)

    assert "/untp" not in public
    assert sorted(link.rsplit("/", 1)[-1] for link in links) == ["dpp", "untp"]
    for link in links:
        assert client.get(link, headers=reader).status_code == 200


# -- CLI -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli(chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    return Cli(_copy(chain, tmp_path_factory, "untp-cli"))


def test_the_cli_exports_the_same_documents_as_the_api(
    cli: Cli,
    tmp_path: Path,
    lot_documents: dict[str, dict[str, Any]],
    passport_documents: dict[str, dict[str, Any]],
) -> None:
    lot = cli("export", "untp", "--lot", "KOL-2").json()
    events = cli("export", "untp", "--passport", "PASS-2").ok().stdout
    output = tmp_path / "dpp.json"
    cli("export", "untp", "--passport", "PASS-2", "--dpp", "--output", str(output)).ok()
    dpp = json.loads(output.read_bytes())

    assert lot == lot_documents["KOL-2"]
    assert json.loads(events) == passport_documents["PASS-2"]
    assert_valid(DPP_SCHEMA, dpp)
    (link,) = dpp["credentialSubject"]["traceabilityInformation"][0]["traceabilityEvent"]
    assert link["linkURL"] == passport_documents["PASS-2"]["id"]  # no address on the CLI
    assert link["hashDigest"] == hashlib.sha256(events.removesuffix("\n").encode()).hexdigest()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give either --lot LOT or --passport PASSPORT"),
        (("--lot", "KOL-1", "--passport", "PASS-1"), "give either --lot LOT or --passport"),
        (("--lot", "KOL-1", "--dpp"), "a DPP is a passport's"),
    ],
)
def test_the_cli_refuses_an_export_without_one_subject(
    args: tuple[str, ...], message: str, cli: Cli
) -> None:
    assert message in cli("export", "untp", *args).refusal()
