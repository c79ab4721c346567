"""Audits of passports on anvil: a clean chain passes every check, and each kind of defect an
auditor must catch is reported as the failed check it belongs to, with its evidence.

Defects the real ledger refuses to record (an operation by a revoked participant, a consumption
by a recipient that never received the lot, over-consumption, mass created in a transformation)
are recorded on the lax ledger of ``tests.audit.lax_ledger``; the code check must then fail too.
"""

from __future__ import annotations

import gzip
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak
from jsonschema import Draft202012Validator, FormatChecker
from web3 import Web3

from mine2cell.audit.verify import (
    PassportNotOnLedger,
    Verification,
    public_url,
    report_bytes,
    report_schema,
    verify,
)
from mine2cell.chain.node import DevNode
from mine2cell.ids import show_id
from mine2cell.index.store import SqliteStore
from mine2cell.index.sync import Indexer
from mine2cell.provenance.documents import passport_document
from mine2cell.signing.eip712 import (
    BindPassport,
    Certify,
    Correct,
    Input,
    LocalSigner,
    Output,
    Receive,
    Revoke,
    Ship,
    SignedOperation,
    Transform,
)
from tests.audit import lax_ledger
from tests.chain.ledger_support import (
    CAM_NMC,
    CO_HYDROXIDE,
    DID_NOT_OCCUR,
    LI_CARBONATE,
    commission,
    delivery,
    lot_id,
    passport_id,
    pin_next_block_timestamp,
)
from tests.conftest import TEST_BATCH_GAS, Cast, build_cast, facility, rpc

pytestmark = pytest.mark.anvil

ORE_CD, ORE_AU, CAM = lot_id("audit ore cd"), lot_id("audit ore au"), lot_id("audit cathode")
PASSPORT, OTHER = passport_id("audit 1"), passport_id("audit 2")
HIGH_RISK = frozenset({"CD"})


@pytest.fixture(scope="session")
def audit_node() -> Iterator[DevNode]:
    with DevNode() as node:
        yield node


@pytest.fixture(scope="session")
def casts(audit_node: DevNode) -> dict[str, Cast]:
    w3 = Web3(Web3.HTTPProvider(audit_node.url))
    return {"real": build_cast(w3), "lax": build_cast(w3, lax_ledger.load())}


def _resync(casts: dict[str, Cast]) -> None:
    # The two ledgers share the relayer: each transactor reads its nonce from the node.
    for cast in casts.values():
        cast.ledger._next_nonce.clear()
        assert cast.ledger.transactor is not None
        cast.ledger.transactor.resync_nonce()


@pytest.fixture
def snapshot(casts: dict[str, Cast]) -> Iterator[None]:
    w3 = casts["real"].w3
    taken = rpc(w3, "evm_snapshot", [])
    _resync(casts)
    try:
        yield
    finally:
        rpc(w3, "evm_revert", [taken])
        _resync(casts)


@pytest.fixture
def cast(casts: dict[str, Cast], snapshot: None) -> Cast:
    return casts["real"]


@pytest.fixture
def lax(casts: dict[str, Cast], snapshot: None) -> Cast:
    return casts["lax"]


# -- recording ------------------------------------------------------------------------------------


def certify(cast: Cast, *who: str, valid_until: int = 2_000_000_000) -> None:
    cast.ok(
        *(
            cast.sign(
                Certify,
                cast.governor,
                participant=getattr(cast, name).address,
                scheme=facility("RMAP"),
                valid_until=valid_until,
                document_hash=keccak(text=f"{name} certificate"),
            )
            for name in who
        )
    )


def deliver(cast: Cast) -> list[SignedOperation]:
    """Both mines' ores commissioned and delivered to the refiner."""
    ops = [
        *delivery(cast, ORE_CD, cast.refiner, material=CO_HYDROXIDE, quantity=1_000_000),
        *delivery(
            cast, ORE_AU, cast.refiner, by=cast.mine_au, material=LI_CARBONATE, quantity=2_000_000
        ),
    ]
    cast.ok(*ops)
    return ops


def refine_and_deliver(cast: Cast) -> SignedOperation:
    transform = cast.sign(
        Transform,
        cast.refiner,
        inputs=(Input(ORE_CD, 600_000), Input(ORE_AU, 2_000_000)),
        outputs=(Output(CAM, CAM_NMC, 2_400_000, keccak(text="cam assay")),),
        footprint=700_000,
    )
    cast.ok(
        transform,
        cast.sign(Ship, cast.refiner, lot=CAM, recipient=cast.cell.address),
        cast.sign(Receive, cast.cell, lot=CAM, counterparty=cast.refiner.address),
    )
    return transform


def bind(cast: Cast, passport: bytes = PASSPORT, grams: int = 1_000_000) -> SignedOperation:
    binding = cast.sign(
        BindPassport, cast.cell, passport=passport, inputs=(Input(CAM, grams),), footprint=900_000
    )
    cast.ok(binding)
    return binding


def clean_chain(cast: Cast) -> dict[str, SignedOperation]:
    """Certified mines, ores refined into cathode material, two passports bound from it."""
    certify(cast, "mine_cd", "mine_au")
    ops = deliver(cast)
    transform = refine_and_deliver(cast)
    binding = bind(cast)
    bind(cast, OTHER, 500_000)  # another passport from the same lot: also audited
    return {"commission": ops[0], "transform": transform, "bind": binding}


def audit(cast: Cast, **options: Any) -> Verification:
    return verify(
        cast.w3,
        cast.ledger.address,
        PASSPORT,
        rpc_url=cast.w3.provider.endpoint_uri,  # type: ignore[attr-defined]
        high_risk_countries=HIGH_RISK,
        **options,
    )


def service_report(cast: Cast, tmp_path: Path, tamper: str | None = None) -> object:
    """The service's report of the passport, from an index synced from the chain (and then
    tampered with by ``tamper``, SQL run on the index)."""
    path = tmp_path / "index.sqlite"
    store = SqliteStore(path)
    try:
        Indexer(cast.w3, cast.ledger.address, store).sync()
        if tamper is not None:
            with sqlite3.connect(path) as conn:
                conn.execute(tamper)
                conn.execute("DELETE FROM reports")
        document = passport_document(store, PASSPORT, high_risk_countries=HIGH_RISK)
    finally:
        store.close()
    assert document is not None
    return json.loads(document)


def failed(result: Verification) -> dict[str, list[str]]:
    return {c.id: [f.message for f in c.findings] for c in result.checks if not c.passed}


# -- a clean chain ---------------------------------------------------------------------------------


def test_a_clean_chain_passes_every_check(cast: Cast, tmp_path: Path) -> None:
    clean_chain(cast)

    result = audit(cast, compare=service_report(cast, tmp_path), compare_source="index")

    assert failed(result) == {}
    assert result.passed
    ids = [c.id for c in result.checks]
    assert ids == [
        "code",
        "chain",
        "inclusion",
        "signatures",
        "roles",
        "custody",
        "quantities",
        "mass-balance",
        "completeness",
        "origins",
        "corrections",
        "comparison",
    ]
    assert all(c.checked > 0 for c in result.checks), [(c.id, c.checked) for c in result.checks]
    # Every event touching the upstream lots, also the other passport's consumption of CAM.
    names = [e["event"] for e in result.events]
    assert names.count("LotConsumed") == 4 and names.count("LotCommissioned") == 2
    assert result.figures["lots"] == 3 and result.figures["steps"] == 2


def test_the_figures_are_recomputed_from_the_chain(cast: Cast) -> None:
    clean_chain(cast)

    report = audit(cast).to_json()

    provenance = report["provenance"]
    assert report["verdict"] == "pass" and report["schema"] == "mine2cell.audit/1"
    assert provenance["grams_bound"] == 1_000_000
    # 1,000 kg of the 2,400 kg of CAM: 600 kg Congolese and 2,000 kg Australian ore, 5/12 each.
    countries = {c["country"]: c["share"]["percent"] for c in provenance["countries"]}
    assert countries == {"AU": "76.9231", "CD": "23.0769"}
    assert "high-risk-origin" in {f["code"] for f in provenance["flags"]}
    assert report["parameters"]["chain_id"] == 31337 and report["code"]["matches"]


def test_reports_validate_against_the_published_schema(cast: Cast, tmp_path: Path) -> None:
    ops = clean_chain(cast)
    passing = audit(cast, compare=service_report(cast, tmp_path), compare_source="index")
    correct(cast, ops["commission"], by=cast.auditor)
    failing = audit(cast, expected_chain_id=1)

    validator = Draft202012Validator(report_schema(), format_checker=FormatChecker())
    for result in (passing, failing):
        document = json.loads(report_bytes(result.to_json()))
        errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(document)]
        assert errors == []
    assert json.loads(report_bytes(failing.to_json()))["verdict"] == "fail"


def test_an_unbound_passport_is_a_clear_error(cast: Cast) -> None:
    clean_chain(cast)

    with pytest.raises(PassportNotOnLedger, match="is not bound on the ledger"):
        verify(
            cast.w3,
            cast.ledger.address,
            passport_id("never bound"),
            rpc_url="http://node",
            high_risk_countries=HIGH_RISK,
        )


# -- defects the service's database can hide -------------------------------------------------------


def test_a_tampered_quantity_in_the_service_database_is_found(cast: Cast, tmp_path: Path) -> None:
    clean_chain(cast)
    tampered = service_report(
        cast, tmp_path, f"UPDATE commissions SET quantity = '1500000' WHERE lot = x'{ORE_CD.hex()}'"
    )

    result = audit(cast, compare=tampered, compare_source="service")

    assert list(failed(result)) == ["comparison"]
    messages = failed(result)["comparison"]
    # The battery holds the 600 kg consumed either way; the lot's footprint is spread thinner.
    assert "footprint.total: service 1194.583 kg, chain 1195.000 kg" in messages
    assert f"dag.lots[0x{ORE_CD.hex()}].quantity: service 1500000, chain 1000000" in messages


def test_a_tampered_origin_in_the_service_database_is_found(cast: Cast, tmp_path: Path) -> None:
    clean_chain(cast)
    tampered = service_report(
        cast, tmp_path, f"UPDATE commissions SET country = 'RW' WHERE lot = x'{ORE_CD.hex()}'"
    )

    result = audit(cast, compare=tampered, compare_source="service")

    messages = failed(result)["comparison"]
    assert "countries[RW]: not on the chain" in "\n".join(messages)
    assert any(m.startswith("countries[CD]: missing from the service's report") for m in messages)


def test_a_correction_the_service_dropped_is_found(cast: Cast, tmp_path: Path) -> None:
    ops = clean_chain(cast)
    correct(cast, ops["transform"], by=cast.auditor)
    hidden = service_report(cast, tmp_path, "DELETE FROM corrections")

    result = audit(cast, compare=hidden, compare_source="service")

    assert set(failed(result)) == {"corrections", "comparison"}
    assert any("flags[corrected-event" in m for m in failed(result)["comparison"])


# -- defects on the chain --------------------------------------------------------------------------


def correct(cast: Cast, target: SignedOperation, by: LocalSigner) -> None:
    correction = cast.sign(
        Correct,
        by,
        target=target.event_id,
        reason=DID_NOT_OCCUR,
        corrective=(),
    )
    result = cast.ledger.relay([cast.ledger.calldata(correction)], gas=TEST_BATCH_GAS)
    assert result.failed == {}, result.failed


def test_a_corrected_event_still_counted_fails_the_corrections_check(cast: Cast) -> None:
    ops = clean_chain(cast)
    correct(cast, ops["commission"], by=cast.auditor)

    result = audit(cast)

    assert list(failed(result)) == ["corrections"]
    (message,) = failed(result)["corrections"]
    assert f"LotCommissioned of lot {show_id(ORE_CD)}" in message and "did not occur" in message
    finding = result.check("corrections").findings[0]
    assert finding.evidence is not None and finding.evidence.event == "EventCorrected"


def test_an_expired_certification_fails_the_origins_check(cast: Cast) -> None:
    certify(cast, "mine_au")
    now = pin_next_block_timestamp(cast.w3)
    certify(cast, "mine_cd", valid_until=now + 5)
    rpc(cast.w3, "evm_setNextBlockTimestamp", [now + 60])
    deliver(cast)
    refine_and_deliver(cast)
    bind(cast)

    result = audit(cast)

    assert list(failed(result)) == ["origins"]
    (message,) = failed(result)["origins"]
    assert f"lot {show_id(ORE_CD)}" in message and "its certifications had expired" in message


def test_a_mine_without_certification_fails_the_origins_check(cast: Cast) -> None:
    certify(cast, "mine_au")
    deliver(cast)
    refine_and_deliver(cast)
    bind(cast)

    assert failed(audit(cast)) == {
        "origins": [
            f"lot {show_id(ORE_CD)}, commissioned by {cast.mine_cd.address} at block "
            f"{cast.w3.eth.block_number - 2}: {cast.mine_cd.address} had no certification recorded"
        ]
    }


def test_a_participant_revoked_before_its_event_fails_the_roles_check(lax: Cast) -> None:
    certify(lax, "mine_cd", "mine_au")
    deliver(lax)
    lax.ok(lax.sign(Revoke, lax.governor, participant=lax.refiner.address))
    refine_and_deliver(lax)  # the lax ledger records the revoked refiner's operations
    bind(lax)

    result = audit(lax)

    assert set(failed(result)) == {"code", "roles"}
    messages = failed(result)["roles"]
    assert len(messages) == 2  # the transformation and the shipment
    assert all(f"{lax.refiner.address} had its roles revoked" in m for m in messages)


def test_an_unreceived_shipment_fails_the_custody_check(lax: Cast) -> None:
    certify(lax, "mine_cd", "mine_au")
    lax.ok(
        commission(lax, ORE_CD, quantity=1_000_000),
        lax.sign(Ship, lax.mine_cd, lot=ORE_CD, recipient=lax.refiner.address),
        *delivery(
            lax, ORE_AU, lax.refiner, by=lax.mine_au, material=LI_CARBONATE, quantity=2_000_000
        ),
    )
    refine_and_deliver(lax)  # consumes ORE_CD, shipped to the refiner but never received
    bind(lax)

    result = audit(lax)

    assert set(failed(result)) == {"code", "custody"}
    (message,) = failed(result)["custody"]
    assert f"by {lax.refiner.address}, which never received it" in message


def test_over_consumption_and_created_mass_fail_their_checks(lax: Cast) -> None:
    certify(lax, "mine_cd", "mine_au")
    deliver(lax)
    lax.ok(
        lax.sign(
            Transform,
            lax.refiner,
            inputs=(Input(ORE_CD, 1_500_000),),  # of 1,000 kg
            outputs=(Output(CAM, CO_HYDROXIDE, 3_000_000),),  # the same material, doubled
        ),
        lax.sign(Ship, lax.refiner, lot=CAM, recipient=lax.cell.address),
        lax.sign(Receive, lax.cell, lot=CAM, counterparty=lax.refiner.address),
    )
    bind(lax)

    result = audit(lax)

    assert set(failed(result)) == {"code", "quantities", "mass-balance"}
    assert "500,000 g more than it held" in failed(result)["quantities"][0]
    assert (
        "produced 3,000,000 g of material 101 from 1,500,000 g" in failed(result)["mass-balance"][0]
    )


def test_a_ledger_whose_code_differs_fails_the_code_check_alone(lax: Cast) -> None:
    clean_chain(lax)

    result = audit(lax)

    assert list(failed(result)) == ["code"]
    assert "it is another contract or another build" in failed(result)["code"][0]


def test_another_chain_than_expected_fails_the_chain_check(cast: Cast) -> None:
    clean_chain(cast)

    result = audit(cast, expected_chain_id=1)

    assert failed(result) == {"chain": ["the node is on chain 31337, not on the expected chain 1"]}


def test_a_copy_of_the_ledger_on_another_chain_fails(cast: Cast, tmp_path: Path) -> None:
    clean_chain(cast)
    state = tmp_path / "state.json"
    dump = str(rpc(cast.w3, "anvil_dumpState", []))  # gzipped JSON, as hex
    state.write_bytes(gzip.decompress(bytes.fromhex(dump[2:])))

    with DevNode(chain_id=4242, extra_args=("--load-state", str(state))) as copy:
        w3 = Web3(Web3.HTTPProvider(copy.url))
        result = verify(
            w3, cast.ledger.address, PASSPORT, rpc_url=copy.url, high_risk_countries=HIGH_RISK
        )

    assert set(failed(result)) == {"chain", "signatures"}
    assert "was deployed on chain 31337 but the node is on chain 4242" in failed(result)["chain"][0]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:secret@node.example:8545/v1?apikey=k3y", "https://node.example:8545"),
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
        ("https://mainnet.example/v3/0123456789abcdef", "https://mainnet.example"),
    ],
)
def test_the_report_names_the_node_without_its_credentials(url: str, shown: str) -> None:
    assert public_url(url) == shown


def test_the_lax_ledger_is_built_from_the_current_contracts() -> None:
    assert lax_ledger.recorded_source_hash() == lax_ledger.source_hash(), (
        "contracts/Ledger.sol changed: rebuild with `.venv/bin/python -m tests.audit.lax_ledger`"
    )
