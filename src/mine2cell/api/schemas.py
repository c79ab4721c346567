"""The documented shapes of the API's answers, for the OpenAPI description. Routes return plain
JSON built by the reports' ``to_json``; these models say what it holds, and the schemathesis
suite checks every answer against them (unknown fields are refused, so a drift is caught)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

HEX32 = r"^0x[0-9a-f]{64}$"
ADDRESS = r"^0x[0-9a-fA-F]{40}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Health(Strict):
    status: Literal["ok"]


class Ready(Strict):
    status: Literal["ready"]
    chain_id: int
    ledger: str = Field(pattern=ADDRESS)
    head_block: int
    indexed_block: int = Field(description="-1 before the first block is indexed")
    index_lag: int = Field(ge=0, description="blocks between the node's head and the index")
    relaying: bool = Field(description="this process relays the outbox")


class OperationStatus(Strict):
    eventId: str = Field(pattern=HEX32)
    type: str
    actor: str = Field(pattern=ADDRESS)
    nonce: str = Field(description="decimal (uint256)")
    status: Literal["pending", "submitted", "confirmed", "rejected"]
    acceptedAt: float
    updatedAt: float
    txHash: str | None = Field(default=None, pattern=HEX32)
    blockNumber: int | None = None
    blockHash: str | None = Field(default=None, pattern=HEX32)
    confirmations: int | None = None
    error: str | None = Field(default=None, description="the ledger's error, when rejected")
    reason: str | None = Field(default=None, description="why, in words, when rejected")
    relayError: str | None = Field(
        default=None,
        description="when pending: why this service's relay cannot submit it now (its key was "
        "revoked, it cannot pay for gas); it waits in the outbox until the relay can",
    )


class Accepted(OperationStatus):
    statusUrl: str


class Labelled(Strict):
    id: str = Field(pattern=HEX32)
    label: str = Field(description="the lot number or text, else the 0x id")


class Evidence(Strict):
    event_id: str = Field(pattern=HEX32)
    tx_hash: str = Field(pattern=HEX32)
    block_number: int
    block_hash: str = Field(pattern=HEX32)
    log_index: int
    timestamp: int
    actor: str = Field(pattern=ADDRESS)


class Share(Strict):
    """An exact share: reduced numerator and denominator in hex, and a rounded percentage."""

    num: str
    den: str
    percent: str


class CO2e(Strict):
    num: str
    den: str
    grams: str
    kg: str


class Recycled(Strict):
    pre_consumer: Share
    post_consumer: Share
    total: Share


class Material(Strict):
    code: int
    name: str


class LotLinks(Strict):
    history: str
    upstream: str
    downstream: str


class LotState(Strict):
    lot: Labelled
    material: Material
    remaining_grams: int
    custodian: str = Field(pattern=ADDRESS)
    in_transit_to: str | None
    closed: bool
    links: LotLinks


class Step(Strict):
    event_id: str = Field(pattern=HEX32)
    kind: Literal["transform", "bind"] | None
    passport: Labelled | None


class Correction(Strict):
    reason: str
    corrective_event_ids: list[str]
    evidence: Evidence


class LotEvent(Strict):
    kind: Literal["commission", "produce", "ship", "receive", "reject", "recall", "consume"]
    evidence: Evidence
    quantity_grams: int | None = None
    remaining_grams: int | None = None
    counterparty: str | None = Field(default=None, pattern=ADDRESS)
    step: Step | None = None
    corrections: list[Correction]


class LotHistory(Strict):
    lot: Labelled
    events: list[LotEvent]


class Certification(Strict):
    scheme: Labelled
    valid_until: int
    valid_until_utc: str
    in_force: bool = Field(description="the latest record of its scheme")
    valid_now: bool
    document_hash: str = Field(pattern=HEX32)
    evidence: Evidence


class RoleChange(Strict):
    change: Literal["accredit", "revoke"]
    roles: list[str]
    evidence: Evidence


class Participant(Strict):
    account: str = Field(pattern=ADDRESS)
    accredited: bool
    roles: list[str]
    facility: Labelled
    country: str
    certifications: list[Certification]
    history: list[RoleChange]


class Participants(Strict):
    participants: list[Participant]


class Attestation(Strict):
    verdict: str
    report_hash: str = Field(pattern=HEX32)
    event: Evidence


class Attestations(Strict):
    passport: Labelled
    attestations: list[Attestation]


class ElementShare(Strict):
    element: str | None
    annex_x: bool
    share: Share


class CountryShare(Strict):
    country: str
    share: Share


class ElementRecycled(Strict):
    element: str | None
    recycled: Recycled


class Summary(Strict):
    """The public tier: no accounts, facilities, lots, grams or events."""

    schema_: Literal["mine2cell.provenance-summary/1"] = Field(alias="schema")
    passport: Labelled
    elements: list[ElementShare]
    countries: list[CountryShare]
    recycled: Recycled
    recycled_by_element: list[ElementRecycled]
    footprint: CO2e
    flags: dict[str, int]
    attestations: int


def ok(model: type[BaseModel], description: str = "Success") -> dict[int | str, dict[str, object]]:
    """A documented 200 answer of ``model``'s shape."""
    return {200: {"model": model, "description": description}}
