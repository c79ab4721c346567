"""The tests every ``Store`` implementation passes (the way eth-tester's backend_testing.py tests
its backends): subclass ``StoreContract`` in a ``Test...`` class that provides two fixtures,
``store`` and ``other_store``, two empty and independent stores of the implementation.

The logs are built by hand (tests/index/handmade.py): no node is involved.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from mine2cell.index.events import LedgerLog
from mine2cell.index.store import Checkpoint, Store
from mine2cell.provenance.model import (
    Attestation,
    CertificationRecord,
    Consumed,
    Correction,
    Graph,
    Handoff,
    Lapse,
    LapseGroup,
    LotNode,
    Origin,
    ParticipantHistory,
    Produced,
    RoleChange,
    Step,
)
from tests.index.handmade import (
    AUDITOR_ACCOUNT,
    BIND_1,
    BIND_2,
    CAM,
    CAM_NMC,
    CELL,
    CO_HYDROXIDE,
    FAIL,
    GENESIS_TIME,
    MINE,
    MINE_AU,
    MINE_CD,
    ORE_AU,
    ORE_CD,
    PASS,
    PASSPORT_1,
    PASSPORT_2,
    REFINE,
    REFINER,
    SIDE_PRODUCT,
    SIDE_STEP,
    SPARE_ORE,
    SUPPLY_CHAIN_COUNTS,
    UINT64_MAX,
    UINT96_MAX,
    HandmadeChain,
    SupplyChain,
    accredited,
    attested,
    bound,
    certified,
    commissioned,
    consumed,
    document,
    event_id,
    handed,
    lot,
    passport,
    produced,
    ref,
    revoked,
    site,
    supply_chain,
    transformed,
)

HandoffKind = Literal["ship", "receive", "reject", "recall"]
_HANDOFF_KINDS: dict[str, HandoffKind] = {
    "LotShipped": "ship",
    "LotReceived": "receive",
    "ShipmentRejected": "reject",
    "ShipmentRecalled": "recall",
}


# -- what a store should answer, derived from the logs -------------------------------------------


def _origin_lot(log: LedgerLog) -> LotNode:
    a = log.args
    origin = Origin(
        a["feedstock"],
        a["footprint"],
        a["facility"],
        a["country"].decode("ascii"),
        a["documentHash"],
        ref(log, a["actor"]),
    )
    return LotNode(a["lot"], a["material"], a["quantity"], origin=origin)


def _handoff(log: LedgerLog) -> Handoff:
    kind = _HANDOFF_KINDS[log.name]
    sender, recipient = log.args["from"], log.args["to"]
    actor = sender if kind in ("ship", "recall") else recipient
    return Handoff(log.args["lot"], kind, sender, recipient, ref(log, actor))


def _role_change(log: LedgerLog) -> RoleChange:
    roles = log.args["roles"] if log.name == "ParticipantAccredited" else 0
    return RoleChange(roles, log.block_number, log.log_index, ref(log, log.args["participant"]))


def _certification(log: LedgerLog) -> CertificationRecord:
    a = log.args
    return CertificationRecord(
        a["scheme"], a["validUntil"], a["documentHash"], ref(log, a["participant"])
    )


def _correction(log: LedgerLog) -> Correction:
    a = log.args
    return Correction(a["target"], a["reason"], tuple(a["corrective"]), ref(log, a["actor"]))


def _attestation(log: LedgerLog) -> Attestation:
    a = log.args
    return Attestation(a["passport"], a["verdict"], a["reportHash"], ref(log, a["auditor"]))


def expected_upstream_of_passport_1(sc: SupplyChain) -> Graph:
    """Passport 1's graph: both ores, the cathode material refined from them, the refining and
    the binding; not the spare ore, the side step or passport 2's binding."""
    logs = sc.logs
    participant = {
        account: ParticipantHistory(account, facility, country, changes, certifications)
        for account, facility, country, changes, certifications in (
            (
                MINE_CD,
                site("KOLWEZI-NORTH"),
                "CD",
                (_role_change(logs["accredit_mine_cd"]),),
                (_certification(logs["certify_mine_cd"]),),
            ),
            (
                MINE_AU,
                site("MURRIN-EAST"),
                "AU",
                (_role_change(logs["accredit_mine_au"]), _role_change(logs["revoke_mine_au"])),
                (),
            ),
            (
                REFINER,
                site("KOKKOLA-REFINERY"),
                "FI",
                (_role_change(logs["accredit_refiner"]),),
                (_certification(logs["certify_refiner"]),),
            ),
            (CELL, site("SKELLEFTEA-CELLS"), "SE", (_role_change(logs["accredit_cell"]),), ()),
            (
                AUDITOR_ACCOUNT,
                site("ANTWERP-AUDIT"),
                "BE",
                (_role_change(logs["accredit_auditor"]),),
                (),
            ),
        )
    }
    cd_commission = ref(logs["commission_cd"], MINE_CD)
    au_commission = ref(logs["commission_au"], MINE_AU)
    return Graph(
        lots={
            ORE_CD: _origin_lot(logs["commission_cd"]),
            ORE_AU: _origin_lot(logs["commission_au"]),
            CAM: LotNode(CAM, CAM_NMC, 2400, produced_by=REFINE),
        },
        steps={
            REFINE: Step(
                "transform",
                ref(logs["refine"], REFINER),
                700,
                (Consumed(ORE_CD, 600), Consumed(ORE_AU, 2000)),
                (Produced(CAM, CAM_NMC, 2400, document(f"assay {CAM.hex()}")),),
            ),
            BIND_1: Step(
                "bind",
                ref(logs["bind_1"], CELL),
                900,
                (Consumed(CAM, 1000),),
                passport=PASSPORT_1,
                document_hash=document(f"bill of materials {PASSPORT_1.hex()}"),
            ),
        },
        consumers={ORE_CD: (REFINE,), ORE_AU: (REFINE,), CAM: (BIND_1,)},
        # The ores' custody ended with a receipt and none of it was corrected: not loaded. The
        # cathode material's receipt was corrected: all of its custody.
        handoffs={CAM: (_handoff(logs["ship_cam"]), _handoff(logs["receive_cam"]))},
        participants=participant,
        corrections={
            logs["commission_cd"].args["eventId"]: (_correction(logs["correct_cd"]),),
            REFINE: (_correction(logs["correct_refine"]),),
            logs["receive_cam"].args["eventId"]: (_correction(logs["correct_receive_cam"]),),
        },
        attestations={PASSPORT_1: (_attestation(logs["attest_1"]),)},
        passports={PASSPORT_1: BIND_1},
        # Only the refiner was certified (block 2); the Congolese mine's certificate came later
        # (block 12), when the Australian mine was revoked. The refiner's events and the
        # spare ore's are not lapses of this graph.
        lapses=(
            LapseGroup(
                "certification-missing",
                MINE_CD,
                2,
                Lapse("certification-missing", "commission", ORE_CD, cd_commission),
                Lapse("certification-missing", "ship", ORE_CD, ref(logs["ship_cd"], MINE_CD)),
            ),
            LapseGroup(
                "certification-missing",
                MINE_AU,
                2,
                Lapse("certification-missing", "commission", ORE_AU, au_commission),
                Lapse("certification-missing", "ship", ORE_AU, ref(logs["ship_au"], MINE_AU)),
            ),
            LapseGroup(
                "certification-missing",
                CELL,
                2,
                Lapse("certification-missing", "receive", CAM, ref(logs["receive_cam"], CELL)),
                Lapse("certification-missing", "bind", None, ref(logs["bind_1"], CELL)),
            ),
        ),
    )


def _stored_supply_chain(store: Store) -> SupplyChain:
    sc = supply_chain()
    sc.chain.ingest_into(store)
    return sc


def _other_branch(sc: SupplyChain, fork_block: int) -> HandmadeChain:
    """A branch forked at ``fork_block`` on which passport 1 failed its audit instead, and a new
    ore was commissioned at the Congolese mine."""
    branch = sc.chain.branch(fork_block, "other branch")
    branch.mine(attested(PASSPORT_1, AUDITOR_ACCOUNT, FAIL))
    branch.mine(
        commissioned(
            lot("late ore"),
            MINE_CD,
            material=CO_HYDROXIDE,
            quantity=70,
            facility="KOLWEZI-NORTH",
            country="CD",
        )
    )
    return branch


class StoreContract:
    """Shared tests of the ``Store`` interface (not collected by itself: no Test prefix)."""

    # -- ingesting ---------------------------------------------------------------------------

    def test_a_new_store_has_no_checkpoint_blocks_or_rows(self, store: Store) -> None:
        assert store.checkpoint() is None
        assert store.stored_blocks(10**9, 100) == []
        assert store.counts() == dict.fromkeys(SUPPLY_CHAIN_COUNTS, 0)
        assert store.passports() == []

    def test_ingest_stores_the_rows_and_the_checkpoint_together(self, store: Store) -> None:
        sc = supply_chain()

        sc.chain.ingest_into(store)

        assert store.counts() == SUPPLY_CHAIN_COUNTS
        assert store.checkpoint() == sc.chain.checkpoint()

    def test_ingest_returns_the_number_of_rows_stored_leaving_out_unkept_events(
        self, store: Store
    ) -> None:
        sc = supply_chain()

        stored = sc.chain.ingest_into(store)

        assert stored == sum(SUPPLY_CHAIN_COUNTS.values())
        assert stored == len(sc.chain.logs) - 1  # the OperationFailed log

    def test_ingesting_the_same_logs_again_stores_nothing_new(self, store: Store) -> None:
        sc = _stored_supply_chain(store)

        stored = sc.chain.ingest_into(store)

        assert stored == 0
        assert store.counts() == SUPPLY_CHAIN_COUNTS
        assert store.checkpoint() == sc.chain.checkpoint()

    def test_a_log_is_known_by_its_transaction_hash_and_log_index(self, store: Store) -> None:
        chain = HandmadeChain()
        [first] = chain.mine(attested(PASSPORT_1, AUDITOR_ACCOUNT, PASS))
        chain.ingest_into(store)
        same_place = replace(first, args={**first.args, "eventId": event_id("another")})
        next_place = replace(same_place, log_index=first.log_index + 1)
        blocks = {first.block_number: chain.blocks[first.block_number]}

        assert store.ingest([same_place], blocks, chain.checkpoint()) == 0
        assert store.ingest([next_place], blocks, chain.checkpoint()) == 1
        assert store.counts()["attestations"] == 2

    def test_ingesting_an_overlapping_page_stores_only_the_logs_not_yet_stored(
        self, store: Store
    ) -> None:
        sc = supply_chain()
        sc.chain.ingest_into(store, last=8)

        stored = sc.chain.ingest_into(store, first=5)

        later = [log for log in sc.chain.logs if log.block_number > 8]
        assert stored == len(later)
        assert store.counts() == SUPPLY_CHAIN_COUNTS

    def test_a_page_without_logs_moves_the_checkpoint_and_keeps_its_last_block(
        self, store: Store
    ) -> None:
        sc = _stored_supply_chain(store)
        for _ in range(3):
            sc.chain.mine()

        stored = sc.chain.ingest_into(store, first=13)

        assert stored == 0
        assert store.checkpoint() == sc.chain.checkpoint(15)
        assert store.stored_blocks(15, 2) == [
            (15, sc.chain.blocks[15][0]),
            (12, sc.chain.blocks[12][0]),
        ]

    def test_stored_blocks_lists_the_blocks_at_or_below_a_number_highest_first(
        self, store: Store
    ) -> None:
        sc = _stored_supply_chain(store)
        hashes = {n: h for n, (h, _) in sc.chain.blocks.items()}

        assert store.stored_blocks(12, 3) == [(12, hashes[12]), (11, hashes[11]), (10, hashes[10])]
        assert store.stored_blocks(2, 10) == [(2, hashes[2]), (1, hashes[1])]

    # -- rolling back ------------------------------------------------------------------------

    def test_rollback_forgets_the_rows_above_the_fork(
        self, store: Store, other_store: Store
    ) -> None:
        sc = _stored_supply_chain(store)
        sc.chain.ingest_into(other_store, last=8)

        store.rollback(8)

        assert store.counts() == other_store.counts()
        assert store.passports() == [PASSPORT_1]

    def test_rollback_forgets_the_blocks_above_the_fork(self, store: Store) -> None:
        sc = _stored_supply_chain(store)

        store.rollback(8)

        assert store.stored_blocks(10**9, 100) == [
            (n, sc.chain.blocks[n][0]) for n in range(8, 0, -1)
        ]

    def test_rollback_moves_the_checkpoint_to_the_fork_block(self, store: Store) -> None:
        sc = _stored_supply_chain(store)

        store.rollback(8)

        assert store.checkpoint() == Checkpoint(8, sc.chain.blocks[8][0])

    def test_rollback_to_minus_one_empties_the_store(self, store: Store) -> None:
        _stored_supply_chain(store)

        store.rollback(-1)

        assert store.checkpoint() is None
        assert store.stored_blocks(10**9, 100) == []
        assert store.counts() == dict.fromkeys(SUPPLY_CHAIN_COUNTS, 0)
        assert store.upstream(PASSPORT_1) is None

    def test_a_rolled_back_store_answers_like_one_that_never_saw_the_forgotten_blocks(
        self, store: Store, other_store: Store
    ) -> None:
        sc = _stored_supply_chain(store)
        sc.chain.ingest_into(other_store, last=8)

        store.rollback(8)

        assert store.upstream(PASSPORT_1) == other_store.upstream(PASSPORT_1)
        assert store.downstream([ORE_CD]) == other_store.downstream([ORE_CD])

    def test_logs_forgotten_by_a_rollback_are_stored_again_when_ingested_again(
        self, store: Store
    ) -> None:
        sc = _stored_supply_chain(store)
        store.rollback(8)

        stored = sc.chain.ingest_into(store, first=9)

        assert stored == len([log for log in sc.chain.logs if log.block_number > 8])
        assert store.counts() == SUPPLY_CHAIN_COUNTS
        assert store.checkpoint() == sc.chain.checkpoint()

    def test_after_a_rollback_the_other_branch_gives_the_answers_of_a_store_that_only_saw_it(
        self, store: Store, other_store: Store
    ) -> None:
        sc = _stored_supply_chain(store)
        branch = _other_branch(sc, fork_block=8)
        branch.ingest_into(other_store)

        store.rollback(8)
        branch.ingest_into(store, first=9)

        assert store.counts() == other_store.counts()
        assert store.checkpoint() == other_store.checkpoint()
        assert store.upstream(PASSPORT_1) == other_store.upstream(PASSPORT_1)
        assert store.lots_of_facility(site("KOLWEZI-NORTH")) == [ORE_CD, lot("late ore")]

    # -- upstream of a passport --------------------------------------------------------------

    def test_upstream_is_the_graph_closed_over_the_bindings_ancestry(self, store: Store) -> None:
        sc = _stored_supply_chain(store)

        assert store.upstream(PASSPORT_1) == expected_upstream_of_passport_1(sc)

    def test_upstream_lots_are_the_ancestry_with_origins_or_producing_steps(
        self, store: Store
    ) -> None:
        sc = _stored_supply_chain(store)

        graph = store.upstream(PASSPORT_1)

        assert graph is not None
        assert graph.lots == expected_upstream_of_passport_1(sc).lots
        assert SPARE_ORE not in graph.lots and SIDE_PRODUCT not in graph.lots

    def test_upstream_steps_have_their_inputs_and_outputs_in_log_order(self, store: Store) -> None:
        sc = _stored_supply_chain(store)

        graph = store.upstream(PASSPORT_1)

        assert graph is not None
        assert graph.steps == expected_upstream_of_passport_1(sc).steps
        assert graph.passports == {PASSPORT_1: BIND_1}

    def test_upstream_consumers_are_the_graphs_steps_consuming_each_lot(self, store: Store) -> None:
        _stored_supply_chain(store)

        graph = store.upstream(PASSPORT_1)

        assert graph is not None
        assert graph.consumers == {ORE_CD: (REFINE,), ORE_AU: (REFINE,), CAM: (BIND_1,)}

    def test_upstream_handoffs_are_the_whole_custody_of_lots_with_a_corrected_custody_event(
        self, store: Store
    ) -> None:
        sc = _stored_supply_chain(store)

        graph = store.upstream(PASSPORT_1)

        assert graph is not None
        assert graph.handoffs == expected_upstream_of_passport_1(sc).handoffs

    def test_upstream_handoffs_hold_a_lots_last_custody_event_when_it_is_a_shipment(
        self, store: Store
    ) -> None:
        chain = HandmadeChain()
        chain.mine(accredited(MINE_CD, MINE, "KOLWEZI-NORTH", "CD", 1))
        chain.mine(
            commissioned(
                ORE_CD, MINE_CD, material=CO_HYDROXIDE, quantity=900, facility="K", country="CD"
            ),
            handed("LotShipped", ORE_CD, MINE_CD, REFINER),
            handed("ShipmentRecalled", ORE_CD, MINE_CD, REFINER),
        )
        chain.mine(
            transformed(REFINE, MINE_CD, 1, 1, 0),
            consumed(ORE_CD, REFINE, MINE_CD, 300, 600),
            produced(CAM, REFINE, MINE_CD, CAM_NMC, 300),
            bound(PASSPORT_1, BIND_1, MINE_CD, 1, 0),
            consumed(CAM, BIND_1, MINE_CD, 300, 0),
        )
        (ship, *_) = chain.mine(handed("LotShipped", ORE_CD, MINE_CD, REFINER))
        chain.ingest_into(store)

        graph = store.upstream(PASSPORT_1)

        assert graph is not None
        assert graph.handoffs == {ORE_CD: (_handoff(ship),)}

    def test_a_rolled_back_receipt_leaves_the_lot_in_transit_again(self, store: Store) -> None:
        chain = HandmadeChain()
        chain.mine(accredited(MINE_CD, MINE, "KOLWEZI-NORTH", "CD", 1))
        _, ship = chain.mine(
            commissioned(
                ORE_CD, MINE_CD, material=CO_HYDROXIDE, quantity=900, facility="K", country="CD"
            ),
            handed("LotShipped", ORE_CD, MINE_CD, REFINER),
        )
        chain.mine(handed("LotReceived", ORE_CD, MINE_CD, REFINER))
        chain.ingest_into(store, 1, 2)
        chain.ingest_into(store, 1, 3)  # an overlapping page
        received = store.ancestry([ORE_CD]).handoffs

        store.rollback(2)

        assert received == {}
        assert store.ancestry([ORE_CD]).handoffs == {ORE_CD: (_handoff(ship),)}

    def test_upstream_lapses_are_its_events_signed_without_roles_or_a_valid_certificate(
        self, store: Store
    ) -> None:
        sc = _stored_supply_chain(store)

        graph = store.upstream(PASSPORT_1)

        assert graph is not None
        assert graph.lapses == expected_upstream_of_passport_1(sc).lapses

    def test_lapses_are_found_against_the_standing_just_before_each_event_across_pages(
        self, store: Store
    ) -> None:
        chain = HandmadeChain()
        chain.mine(  # block 1: GENESIS_TIME + 12
            accredited(MINE_CD, MINE, "KOLWEZI-NORTH", "CD", 1),
            certified(MINE_CD, "RMAP", GENESIS_TIME + 12 * 3),
        )
        (ok,) = chain.mine(  # block 2: certified and accredited
            commissioned(
                lot("a"), MINE_CD, material=CO_HYDROXIDE, quantity=1, facility="K", country="CD"
            )
        )
        chain.ingest_into(store, 1, 2)
        (last_valid,) = chain.mine(  # block 3: the certificate's last second
            commissioned(
                lot("b"), MINE_CD, material=CO_HYDROXIDE, quantity=1, facility="K", country="CD"
            )
        )
        (expired,) = chain.mine(  # block 4: expired
            commissioned(
                lot("c"), MINE_CD, material=CO_HYDROXIDE, quantity=1, facility="K", country="CD"
            )
        )
        revoke, shipped = chain.mine(  # block 5: revoked, then ships
            revoked(MINE_CD, MINE), handed("LotShipped", lot("c"), MINE_CD, REFINER)
        )
        chain.ingest_into(store, 3, 4)
        chain.ingest_into(store, 5)

        graph = store.ancestry([lot("a"), lot("b"), lot("c")])

        assert ok and last_valid and revoke
        expired_commission = Lapse(
            "certification-expired", "commission", lot("c"), ref(expired, MINE_CD)
        )
        expired_ship = Lapse("certification-expired", "ship", lot("c"), ref(shipped, MINE_CD))
        revoked_ship = Lapse("signer-not-accredited", "ship", lot("c"), ref(shipped, MINE_CD))
        assert graph.lapses == (  # by signer and kind, in chain order of the first event
            LapseGroup("certification-expired", MINE_CD, 2, expired_commission, expired_ship),
            LapseGroup("signer-not-accredited", MINE_CD, 1, revoked_ship, revoked_ship),
        )

    def test_upstream_corrections_are_those_targeting_the_graphs_events(self, store: Store) -> None:
        sc = _stored_supply_chain(store)

        graph = store.upstream(PASSPORT_1)

        assert graph is not None
        assert graph.corrections == expected_upstream_of_passport_1(sc).corrections
        spare = sc.logs["commission_spare"].args["eventId"]
        assert spare not in graph.corrections

    def test_upstream_participants_have_their_role_changes_and_certifications(
        self, store: Store
    ) -> None:
        sc = _stored_supply_chain(store)

        graph = store.upstream(PASSPORT_1)

        assert graph is not None
        assert graph.participants == expected_upstream_of_passport_1(sc).participants

    def test_upstream_attestations_are_those_of_the_passport(self, store: Store) -> None:
        sc = _stored_supply_chain(store)

        graph = store.upstream(PASSPORT_1)

        assert graph is not None
        assert graph.attestations == {PASSPORT_1: (_attestation(sc.logs["attest_1"]),)}

    def test_upstream_of_an_unknown_passport_is_none(self, store: Store) -> None:
        _stored_supply_chain(store)

        assert store.upstream(passport("never bound")) is None

    # -- downstream of lots ------------------------------------------------------------------

    def test_downstream_reaches_every_lot_step_and_passport_after_the_lots(
        self, store: Store
    ) -> None:
        _stored_supply_chain(store)

        graph = store.downstream([ORE_CD])

        assert set(graph.lots) == {ORE_CD, CAM, SIDE_PRODUCT}
        assert set(graph.steps) == {REFINE, SIDE_STEP, BIND_1, BIND_2}
        assert graph.passports == {PASSPORT_1: BIND_1, PASSPORT_2: BIND_2}
        assert set(graph.attestations) == {PASSPORT_1, PASSPORT_2}

    def test_downstream_consumers_list_every_consuming_step_in_chain_order(
        self, store: Store
    ) -> None:
        _stored_supply_chain(store)

        graph = store.downstream([ORE_CD])

        assert graph.consumers[ORE_CD] == (REFINE, SIDE_STEP)
        assert graph.consumers[CAM] == (BIND_1, BIND_2)

    def test_downstream_of_several_lots_is_the_union_of_their_downstreams(
        self, store: Store
    ) -> None:
        _stored_supply_chain(store)

        graph = store.downstream([ORE_AU, SPARE_ORE])

        assert set(graph.lots) == {ORE_AU, SPARE_ORE, CAM}
        assert set(graph.steps) == {REFINE, BIND_1, BIND_2}

    def test_downstream_of_a_lot_nobody_consumed_is_that_lot_alone(self, store: Store) -> None:
        sc = _stored_supply_chain(store)

        graph = store.downstream([SPARE_ORE])

        assert graph.lots == {SPARE_ORE: _origin_lot(sc.logs["commission_spare"])}
        assert graph.steps == {} and graph.passports == {} and graph.consumers == {}

    # -- large numbers -----------------------------------------------------------------------

    def test_quantities_above_two_to_the_63_survive_exactly(self, store: Store) -> None:
        chain = HandmadeChain()
        ore, out, big_passport = lot("big ore"), lot("big output"), passport("big")
        step, binding = event_id("big step"), event_id("big binding")
        chain.mine(
            accredited(MINE_CD, MINE, "KOLWEZI-NORTH", "CD", 1),
            certified(MINE_CD, "RMAP", UINT64_MAX),
        )
        chain.mine(
            commissioned(
                ore,
                MINE_CD,
                material=CO_HYDROXIDE,
                quantity=UINT96_MAX,
                facility="KOLWEZI-NORTH",
                country="CD",
                footprint=UINT64_MAX,
            ),
            transformed(step, MINE_CD, 1, 1, UINT64_MAX),
            consumed(ore, step, MINE_CD, UINT96_MAX, 0),
            produced(out, step, MINE_CD, CAM_NMC, UINT96_MAX),
            bound(big_passport, binding, MINE_CD, 1, UINT64_MAX - 1),
            consumed(out, binding, MINE_CD, UINT96_MAX - 1, 1),
        )
        chain.ingest_into(store)

        graph = store.upstream(big_passport)

        assert graph is not None
        assert graph.lots[ore].quantity == UINT96_MAX
        origin = graph.lots[ore].origin
        assert origin is not None
        assert origin.footprint == UINT64_MAX
        assert graph.lots[out].quantity == UINT96_MAX
        assert graph.steps[step].inputs == (Consumed(ore, UINT96_MAX),)
        assert graph.steps[step].outputs == (
            Produced(out, CAM_NMC, UINT96_MAX, document(f"assay {out.hex()}")),
        )
        assert graph.steps[step].footprint == UINT64_MAX
        assert graph.steps[binding].inputs == (Consumed(out, UINT96_MAX - 1),)
        assert graph.steps[binding].footprint == UINT64_MAX - 1
        [certification] = graph.participants[MINE_CD].certifications
        assert certification.valid_until == UINT64_MAX

    # -- stored reports ----------------------------------------------------------------------

    def _with_reports(self, store: Store, last_block: int) -> SupplyChain:
        """The supply chain up to ``last_block``, with a report kept for each passport."""
        sc = supply_chain()
        sc.chain.ingest_into(store, 1, last_block)
        epoch = store.report_epoch()
        assert store.save_report(PASSPORT_1, "v", b"report 1", epoch)
        assert store.save_report(PASSPORT_2, "v", b"report 2", epoch)
        return sc

    def test_a_kept_report_is_served_for_its_passport_and_variant(self, store: Store) -> None:
        self._with_reports(store, 12)

        assert store.report(PASSPORT_1, "v") == b"report 1"
        assert store.report(PASSPORT_2, "v") == b"report 2"
        assert store.report(PASSPORT_1, "another list") is None
        assert store.report(passport("unbound"), "v") is None

    def test_an_attestation_forgets_its_passports_report_only(self, store: Store) -> None:
        sc = self._with_reports(store, 12)
        sc.chain.mine(attested(PASSPORT_1, AUDITOR_ACCOUNT, PASS))

        sc.chain.ingest_into(store, 13)

        assert store.report(PASSPORT_1, "v") is None
        assert store.report(PASSPORT_2, "v") == b"report 2"

    def test_a_custody_event_on_a_consumed_lot_forgets_the_reports_downstream(
        self, store: Store
    ) -> None:
        sc = self._with_reports(store, 12)
        sc.chain.mine(handed("LotShipped", SPARE_ORE, MINE_AU, REFINER))  # consumed by nobody
        sc.chain.ingest_into(store, 13)
        kept = store.report(PASSPORT_1, "v"), store.report(PASSPORT_2, "v")
        sc.chain.mine(handed("LotShipped", ORE_AU, REFINER, CELL))  # refined for both passports

        sc.chain.ingest_into(store, 14)

        assert kept == (b"report 1", b"report 2")
        assert store.report(PASSPORT_1, "v") is None and store.report(PASSPORT_2, "v") is None

    def test_a_correction_forgets_every_report(self, store: Store) -> None:
        sc = self._with_reports(store, 9)

        sc.chain.ingest_into(store, 10, 10)

        assert store.report(PASSPORT_1, "v") is None and store.report(PASSPORT_2, "v") is None

    def test_a_report_computed_before_an_invalidation_is_not_kept(self, store: Store) -> None:
        sc = supply_chain()
        sc.chain.ingest_into(store, 1, 10)
        epoch = store.report_epoch()
        sc.chain.ingest_into(store, 11, 11)  # passport 1 attested meanwhile

        kept = store.save_report(PASSPORT_1, "v", b"stale", epoch)

        assert not kept and store.report(PASSPORT_1, "v") is None
        assert store.save_report(PASSPORT_1, "v", b"fresh", store.report_epoch())

    def test_a_rollback_forgets_every_report(self, store: Store) -> None:
        self._with_reports(store, 12)

        store.rollback(11)

        assert store.report(PASSPORT_1, "v") is None and store.report(PASSPORT_2, "v") is None

    # -- small reads -------------------------------------------------------------------------

    def test_lots_of_facility_are_the_lots_commissioned_there_in_chain_order(
        self, store: Store
    ) -> None:
        _stored_supply_chain(store)

        assert store.lots_of_facility(site("MURRIN-EAST")) == [ORE_AU, SPARE_ORE]
        assert store.lots_of_facility(site("KOLWEZI-NORTH")) == [ORE_CD]
        assert store.lots_of_facility(site("KOKKOLA-REFINERY")) == []  # produced, not commissioned

    def test_lot_is_the_lot_with_its_origin_or_producing_step_or_none(self, store: Store) -> None:
        sc = _stored_supply_chain(store)

        assert store.lot(ORE_CD) == _origin_lot(sc.logs["commission_cd"])
        assert store.lot(CAM) == LotNode(CAM, CAM_NMC, 2400, produced_by=REFINE)
        assert store.lot(lot("unknown")) is None

    def test_passports_are_the_bound_passports_in_chain_order(self, store: Store) -> None:
        _stored_supply_chain(store)

        assert store.passports() == [PASSPORT_1, PASSPORT_2]

    def test_counts_are_the_rows_of_each_kind(self, store: Store) -> None:
        sc = supply_chain()
        sc.chain.ingest_into(store, last=5)

        assert store.counts() == {
            "participant_changes": 5,
            "certifications": 1,
            "commissions": 3,
            "steps": 1,
            "consumptions": 2,
            "productions": 1,
            "handoffs": 4,
            "corrections": 0,
            "attestations": 0,
        }
