// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title mine2cell custody ledger: operations, events and errors
/// @notice Records every custody hand-off and transformation of mineral lots from mine to battery.
/// Every state change is an operation signed (EIP-712) by an accredited participant and submitted
/// by an accredited relayer, alone or in a batch. The logs alone rebuild the whole provenance
/// graph: every event carries its event id (the EIP-712 digest of the signed operation) and every
/// field that storage leaves out.
/// @dev Quantities are integer grams; footprints are integer grams of CO2e. A lot id, a passport id
/// and an event id are 32 bytes chosen off chain (event ids are the digests of the operations).
interface ILedger {
    // ------------------------------------------------------------------------------------------
    // Roles (a bitmask held by each participant)
    // ------------------------------------------------------------------------------------------
    // MINE = 1, RECYCLER = 2, PROCESSOR = 4, CELL_MAKER = 8, AUDITOR = 16, RELAYER = 32

    // ------------------------------------------------------------------------------------------
    // Signed operations. Every operation starts with the signer (`actor`), a replay-protection
    // nonce (any unused number; one storage word holds 256 consecutive nonces, so a signer's
    // operations are cheapest with consecutive nonces) and a deadline (unix seconds, inclusive).
    // ------------------------------------------------------------------------------------------

    /// @notice An ECDSA signature over the operation's EIP-712 digest; `s` must be in the lower
    /// half of the curve order (EIP-2), `v` 27 or 28.
    struct Signature {
        uint8 v;
        bytes32 r;
        bytes32 s;
    }

    /// @notice Governor: grant `roles` to `participant` (replacing the roles it held).
    struct Accredit {
        address actor;
        uint256 nonce;
        uint256 deadline;
        address participant;
        uint8 roles;
        bytes32 facility;
        bytes2 country;
    }

    /// @notice Governor: withdraw every role of `participant`. Its lots stay where they are.
    struct Revoke {
        address actor;
        uint256 nonce;
        uint256 deadline;
        address participant;
    }

    /// @notice Governor: record a certification of `participant` under `scheme` (e.g. "RMAP").
    struct Certify {
        address actor;
        uint256 nonce;
        uint256 deadline;
        address participant;
        bytes32 scheme;
        uint64 validUntil;
        bytes32 documentHash;
    }

    /// @notice Mine or recycler: create lot `lot` of `quantity` grams of `material`.
    /// `feedstock` is PRIMARY (0) for a mine, PRE_CONSUMER (1) or POST_CONSUMER (2) for a recycler.
    struct Commission {
        address actor;
        uint256 nonce;
        uint256 deadline;
        bytes32 lot;
        uint32 material;
        uint96 quantity;
        uint8 feedstock;
        uint64 footprint;
        bytes32 documentHash;
    }

    /// @notice Custodian: offer `lot` to `recipient`. Custody stays with the sender until received.
    struct Ship {
        address actor;
        uint256 nonce;
        uint256 deadline;
        bytes32 lot;
        address recipient;
    }

    /// @notice The fields of the three operations that end a shipment, each signed under its own
    /// EIP-712 type so that one can never be submitted as another:
    /// `Receive` (recipient accepts; custody moves; `counterparty` is the sender),
    /// `Reject` (recipient refuses; `counterparty` is the sender) and
    /// `Recall` (sender takes the lot back before receipt; `counterparty` is the recipient).
    struct Handoff {
        address actor;
        uint256 nonce;
        uint256 deadline;
        bytes32 lot;
        address counterparty;
    }

    /// @notice A quantity of a lot consumed by a transformation or a passport binding.
    struct Input {
        bytes32 lot;
        uint96 quantity;
    }

    /// @notice A lot produced by a transformation.
    struct Output {
        bytes32 lot;
        uint32 material;
        uint96 quantity;
        bytes32 documentHash;
    }

    /// @notice Processor or cell maker: consume quantities of lots it holds and produce new lots
    /// (refining, splitting, blending). `footprint` is the step's emissions, allocated to the
    /// outputs by mass.
    struct Transform {
        address actor;
        uint256 nonce;
        uint256 deadline;
        Input[] inputs;
        Output[] outputs;
        uint64 footprint;
    }

    /// @notice Cell maker: consume quantities of its lots into the battery identified by `passport`.
    struct BindPassport {
        address actor;
        uint256 nonce;
        uint256 deadline;
        bytes32 passport;
        Input[] inputs;
        uint64 footprint;
        bytes32 documentHash;
    }

    /// @notice Author of an event, or an auditor: declare event `target` erroneous (EPCIS
    /// errorDeclaration). `reason` is DID_NOT_OCCUR (1) or INCORRECT_DATA (2); `corrective` names
    /// the events that replace it (may be empty).
    struct Correct {
        address actor;
        uint256 nonce;
        uint256 deadline;
        bytes32 target;
        uint8 reason;
        bytes32[] corrective;
    }

    /// @notice Auditor: record a verdict on a bound passport's chain with the report's hash.
    /// `verdict` is PASS (1) or FAIL (2).
    struct Attest {
        address actor;
        uint256 nonce;
        uint256 deadline;
        bytes32 passport;
        uint8 verdict;
        bytes32 reportHash;
    }

    // ------------------------------------------------------------------------------------------
    // Events
    // ------------------------------------------------------------------------------------------

    event ParticipantAccredited(
        address indexed participant,
        bytes32 indexed eventId,
        uint32 index,
        uint8 roles,
        bytes32 facility,
        bytes2 country
    );
    event ParticipantRevoked(address indexed participant, bytes32 indexed eventId, uint8 previousRoles);
    event CertificationRecorded(
        address indexed participant,
        bytes32 indexed scheme,
        bytes32 indexed eventId,
        uint64 validUntil,
        bytes32 documentHash
    );
    /// @notice Origin facility and country are copied from the actor's record at that block.
    event LotCommissioned(
        bytes32 indexed lot,
        address indexed actor,
        bytes32 indexed eventId,
        uint32 material,
        uint256 quantity,
        uint8 feedstock,
        uint64 footprint,
        bytes32 documentHash,
        bytes32 facility,
        bytes2 country
    );
    event LotShipped(bytes32 indexed lot, address indexed from, address indexed to, bytes32 eventId);
    event LotReceived(bytes32 indexed lot, address indexed from, address indexed to, bytes32 eventId);
    event ShipmentRejected(bytes32 indexed lot, address indexed from, address indexed to, bytes32 eventId);
    event ShipmentRecalled(bytes32 indexed lot, address indexed from, address indexed to, bytes32 eventId);
    /// @notice Header of a transformation; its inputs and outputs follow as LotConsumed and
    /// LotProduced events carrying the same event id.
    event LotsTransformed(
        bytes32 indexed eventId, address indexed actor, uint256 inputs, uint256 outputs, uint64 footprint
    );
    /// @notice Header of a passport binding; its inputs follow as LotConsumed events.
    event PassportBound(
        bytes32 indexed passport,
        bytes32 indexed eventId,
        address indexed actor,
        uint256 inputs,
        uint64 footprint,
        bytes32 documentHash
    );
    event LotConsumed(
        bytes32 indexed lot, bytes32 indexed eventId, address indexed actor, uint256 quantity, uint256 remaining
    );
    event LotProduced(
        bytes32 indexed lot,
        bytes32 indexed eventId,
        address indexed actor,
        uint32 material,
        uint256 quantity,
        bytes32 documentHash
    );
    event EventCorrected(
        bytes32 indexed target, bytes32 indexed eventId, address indexed actor, uint8 reason, bytes32[] corrective
    );
    event PassportAttested(
        bytes32 indexed passport, bytes32 indexed eventId, address indexed auditor, uint8 verdict, bytes32 reportHash
    );
    /// @notice Operation `index` of a batch was rolled back with `reason` (an ABI-encoded error of
    /// this interface); the rest of the batch went through.
    event OperationFailed(uint256 indexed index, bytes reason);

    // ------------------------------------------------------------------------------------------
    // Errors
    // ------------------------------------------------------------------------------------------

    /// @notice The submitter is neither an accredited relayer nor the governor.
    error LedgerUnauthorizedSubmitter(address submitter);
    /// @notice A batch holds more operations than `max`.
    error LedgerBatchTooLarge(uint256 size, uint256 max);
    /// @notice `relay` was called from inside a batch.
    error LedgerNestedBatch();
    /// @notice Operation `index` ran out of gas: the batch was sent with too little gas.
    error LedgerBatchOutOfGas(uint256 index);
    /// @notice An operation of a batch reverted without a reason (malformed call data or an
    /// unknown function selector).
    error LedgerCallFailed();
    /// @notice The operation's deadline has passed.
    error LedgerExpiredDeadline(uint256 deadline, uint256 timestamp);
    /// @notice The signature is malformed or does not recover to an address.
    error LedgerInvalidSignature();
    /// @notice The signature's `s` is in the upper half of the curve order (malleable).
    error LedgerHighSSignature(bytes32 s);
    /// @notice The signature recovers to `recovered`, not to the operation's actor.
    error LedgerSignerMismatch(address recovered, address actor);
    /// @notice `actor` already used `nonce`.
    error LedgerNonceUsed(address actor, uint256 nonce);
    /// @notice `account` lacks every role of `required` (it holds `held`).
    error LedgerMissingRole(address account, uint8 required, uint8 held);
    /// @notice Only the governor may sign this operation.
    error LedgerNotGovernor(address account);
    /// @notice Roles outside the defined bits, or no role at all, in an accreditation.
    error LedgerInvalidRoles(uint8 roles);
    /// @notice A country that is not two upper-case letters (ISO 3166-1 alpha-2).
    error LedgerInvalidCountry(bytes2 country);
    /// @notice The zero address, or a participant that was never accredited.
    error LedgerUnknownParticipant(address account);
    /// @notice A lot id of zero.
    error LedgerInvalidLotId();
    /// @notice A lot with this id already exists (ids are never reused, even after closing).
    error LedgerLotExists(bytes32 lot);
    /// @notice No lot with this id was ever commissioned or produced.
    error LedgerUnknownLot(bytes32 lot);
    /// @notice A quantity of zero grams.
    error LedgerZeroQuantity(bytes32 lot);
    /// @notice A mine must commission PRIMARY feedstock, a recycler PRE_ or POST_CONSUMER.
    error LedgerInvalidFeedstock(address actor, uint8 feedstock);
    /// @notice `account` is not the custodian of `lot` (`custodian` is).
    error LedgerNotCustodian(bytes32 lot, address account, address custodian);
    /// @notice `lot` is in transit to `recipient`: it cannot be shipped or consumed until received.
    error LedgerLotInTransit(bytes32 lot, address recipient);
    /// @notice `lot` is not in transit.
    error LedgerLotNotInTransit(bytes32 lot);
    /// @notice `account` is not the named recipient of `lot` (`recipient` is).
    error LedgerNotRecipient(bytes32 lot, address account, address recipient);
    /// @notice The shipment of `lot` involves `actual` (its sender for a receive or reject, its
    /// recipient for a recall), not the counterparty named.
    error LedgerWrongCounterparty(bytes32 lot, address named, address actual);
    /// @notice `lot` was consumed to zero: it is closed and can be neither shipped nor consumed.
    error LedgerLotClosed(bytes32 lot);
    /// @notice A lot cannot be shipped to its own custodian.
    error LedgerSelfShipment(bytes32 lot);
    /// @notice `lot` holds `remaining` grams, fewer than the `needed` grams.
    error LedgerInsufficientQuantity(bytes32 lot, uint256 remaining, uint256 needed);
    /// @notice A transformation without inputs or without outputs, or a binding without inputs.
    error LedgerEmptyOperation();
    /// @notice Outputs of `material` (`produced` g) exceed the inputs of the same material consumed.
    error LedgerMassNotConserved(uint32 material, uint256 consumed, uint256 produced);
    /// @notice A passport id of zero.
    error LedgerInvalidPassportId();
    /// @notice `passport` was bound already.
    error LedgerPassportAlreadyBound(bytes32 passport);
    /// @notice `passport` was never bound.
    error LedgerUnknownPassport(bytes32 passport);
    /// @notice An unknown correction reason or attestation verdict.
    error LedgerInvalidCode(uint8 code);
    /// @notice `account` is not the author of event `target` and is not an auditor; or the proof
    /// of authorship given does not hash to `target`.
    error LedgerNotEventAuthor(bytes32 target, address account);

    // ------------------------------------------------------------------------------------------
    // Submission. Each operation function is called by an accredited relayer (or the governor),
    // directly for one operation or through `relay` for many.
    // ------------------------------------------------------------------------------------------

    /// @notice Run a batch of calls to this contract's operation functions, each ABI-encoded with
    /// its selector. An operation that reverts is rolled back alone: `OperationFailed(index,
    /// reason)` is logged, its nonce stays unused, and the rest of the batch goes on. The returned
    /// array holds the revert data of each failed operation (never empty: a revert without data
    /// is reported as `LedgerCallFailed`) and is empty for the ones recorded, so a simulation
    /// (eth_call) tells the relayer which operations to drop, and why, before sending.
    /// The submitter is checked once, at the start of the batch. An operation that runs out of
    /// gas fails the whole batch (`LedgerBatchOutOfGas`) instead of being reported as rejected.
    function relay(bytes[] calldata calls) external returns (bytes[] memory failures);

    function accredit(Accredit calldata op, Signature calldata sig) external;
    function revoke(Revoke calldata op, Signature calldata sig) external;
    function certify(Certify calldata op, Signature calldata sig) external;
    function commission(Commission calldata op, Signature calldata sig) external;
    function ship(Ship calldata op, Signature calldata sig) external;
    function receiveLot(Handoff calldata op, Signature calldata sig) external;
    function reject(Handoff calldata op, Signature calldata sig) external;
    function recall(Handoff calldata op, Signature calldata sig) external;
    function transform(Transform calldata op, Signature calldata sig) external;
    function bindPassport(BindPassport calldata op, Signature calldata sig) external;
    /// @param authorship empty for an auditor; otherwise the EIP-712 `encodeData` of the target
    /// operation (its typehash followed by its encoded fields, the first being its actor), which
    /// proves that the signer is the target's author. Its nonce must be used, which shows that an
    /// operation of the author with that nonce was recorded; whether the target itself was
    /// recorded is for readers of the logs to check (an event id never emitted has no effect).
    function correct(Correct calldata op, Signature calldata sig, bytes calldata authorship) external;
    function attest(Attest calldata op, Signature calldata sig) external;

    // ------------------------------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------------------------------

    /// @notice The current state of a lot. `recipient` is zero unless the lot is in transit.
    function lot(bytes32 id)
        external
        view
        returns (address custodian, address recipient, uint256 remaining, uint32 material);

    function participant(address account)
        external
        view
        returns (uint32 index, uint8 roles, bytes2 country, bytes32 facility);

    function certification(address account, bytes32 scheme)
        external
        view
        returns (uint64 validUntil, bytes32 documentHash);

    /// @notice The cell maker that bound `passport`, or zero.
    function passportBinder(bytes32 passport) external view returns (address);

    function nonceUsed(address actor, uint256 nonce) external view returns (bool);

    /// @notice The 256 nonce bits of `actor` in word `word` (nonces word*256 .. word*256+255).
    function nonceBitmap(address actor, uint256 word) external view returns (uint256);

    function governor() external view returns (address);

    /// @notice The EIP-712 digest (event id) of an operation's struct hash.
    function eventId(bytes32 structHash) external view returns (bytes32);

    function maxBatchSize() external pure returns (uint256);
}
