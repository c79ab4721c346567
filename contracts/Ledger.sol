// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ILedger} from "./ILedger.sol";

/// @title mine2cell custody ledger
/// @notice See {ILedger}. The governor is fixed at deployment and can only accredit, revoke and
/// certify participants: no function edits or deletes a recorded lot, shipment, transformation,
/// binding, correction or attestation.
contract Ledger is ILedger, EIP712 {
    uint8 internal constant MINE = 1;
    uint8 internal constant RECYCLER = 2;
    uint8 internal constant PROCESSOR = 4;
    uint8 internal constant CELL_MAKER = 8;
    uint8 internal constant AUDITOR = 16;
    uint8 internal constant RELAYER = 32;
    uint8 internal constant ALL_ROLES = 63;
    /// Roles that hold material and may therefore be named as the recipient of a shipment.
    uint8 internal constant CUSTODY_ROLES = MINE | RECYCLER | PROCESSOR | CELL_MAKER;

    uint8 internal constant PRIMARY = 0;
    uint8 internal constant PRE_CONSUMER = 1;
    uint8 internal constant POST_CONSUMER = 2;

    uint8 internal constant DID_NOT_OCCUR = 1;
    uint8 internal constant INCORRECT_DATA = 2;
    uint8 internal constant PASS = 1;
    uint8 internal constant FAIL = 2;

    uint256 internal constant MAX_BATCH = 256;
    /// Transient flag set while `relay` runs its operations (EIP-1153): keccak256("mine2cell.relaying").
    uint256 private constant _RELAYING_SLOT = 0x9268531d8df564601e99200781908f9586ec6a07dd3f3aefcdce04d9e5a8b4e1;

    bytes32 internal constant ACCREDIT_TYPEHASH = keccak256(
        "Accredit(address actor,uint256 nonce,uint256 deadline,address participant,uint8 roles,bytes32 facility,bytes2 country)"
    );
    bytes32 internal constant REVOKE_TYPEHASH =
        keccak256("Revoke(address actor,uint256 nonce,uint256 deadline,address participant)");
    bytes32 internal constant CERTIFY_TYPEHASH = keccak256(
        "Certify(address actor,uint256 nonce,uint256 deadline,address participant,bytes32 scheme,uint64 validUntil,bytes32 documentHash)"
    );
    bytes32 internal constant COMMISSION_TYPEHASH = keccak256(
        "Commission(address actor,uint256 nonce,uint256 deadline,bytes32 lot,uint32 material,uint96 quantity,uint8 feedstock,uint64 footprint,bytes32 documentHash)"
    );
    bytes32 internal constant SHIP_TYPEHASH =
        keccak256("Ship(address actor,uint256 nonce,uint256 deadline,bytes32 lot,address recipient)");
    bytes32 internal constant RECEIVE_TYPEHASH =
        keccak256("Receive(address actor,uint256 nonce,uint256 deadline,bytes32 lot,address counterparty)");
    bytes32 internal constant REJECT_TYPEHASH =
        keccak256("Reject(address actor,uint256 nonce,uint256 deadline,bytes32 lot,address counterparty)");
    bytes32 internal constant RECALL_TYPEHASH =
        keccak256("Recall(address actor,uint256 nonce,uint256 deadline,bytes32 lot,address counterparty)");
    bytes32 internal constant INPUT_TYPEHASH = keccak256("Input(bytes32 lot,uint96 quantity)");
    bytes32 internal constant OUTPUT_TYPEHASH =
        keccak256("Output(bytes32 lot,uint32 material,uint96 quantity,bytes32 documentHash)");
    bytes32 internal constant TRANSFORM_TYPEHASH = keccak256(
        "Transform(address actor,uint256 nonce,uint256 deadline,Input[] inputs,Output[] outputs,uint64 footprint)"
        "Input(bytes32 lot,uint96 quantity)"
        "Output(bytes32 lot,uint32 material,uint96 quantity,bytes32 documentHash)"
    );
    bytes32 internal constant BIND_PASSPORT_TYPEHASH = keccak256(
        "BindPassport(address actor,uint256 nonce,uint256 deadline,bytes32 passport,Input[] inputs,uint64 footprint,bytes32 documentHash)"
        "Input(bytes32 lot,uint96 quantity)"
    );
    bytes32 internal constant CORRECT_TYPEHASH = keccak256(
        "Correct(address actor,uint256 nonce,uint256 deadline,bytes32 target,uint8 reason,bytes32[] corrective)"
    );
    bytes32 internal constant ATTEST_TYPEHASH = keccak256(
        "Attest(address actor,uint256 nonce,uint256 deadline,bytes32 passport,uint8 verdict,bytes32 reportHash)"
    );

    /// One storage slot (32 + 32 + 96 + 32 = 192 bits), so a hand-off reads and writes one word.
    /// Participants are stored by index rather than address to make room for the recipient.
    /// A lot exists iff custodian != 0; it is closed when remaining == 0; in transit iff recipient != 0.
    struct LotState {
        uint32 custodian;
        uint32 recipient;
        uint96 remaining;
        uint32 material;
    }

    /// One storage slot (32 + 8 + 16 = 56 bits). index != 0 once ever accredited; roles == 0 when revoked.
    struct ParticipantState {
        uint32 index;
        uint8 roles;
        bytes2 country;
    }

    /// Two slots: validUntil (64 bits) in the first, the document hash in the second.
    struct Certification {
        uint64 validUntil;
        bytes32 documentHash;
    }

    address private immutable _governor;
    uint32 private _participantCount;
    mapping(address account => ParticipantState) private _participants;
    mapping(uint32 index => address) private _accounts;
    mapping(address account => bytes32) private _facilities;
    mapping(address account => mapping(bytes32 scheme => Certification)) private _certifications;
    mapping(bytes32 id => LotState) private _lots;
    mapping(bytes32 passport => address) private _binders;
    mapping(address actor => mapping(uint256 word => uint256)) private _nonceBits;

    constructor(address governor_) EIP712("mine2cell Ledger", "1") {
        if (governor_ == address(0)) revert LedgerUnknownParticipant(governor_);
        _governor = governor_;
    }

    // ------------------------------------------------------------------------------------------
    // Batch
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc ILedger
    function relay(bytes[] calldata calls) external returns (bytes[] memory failures) {
        if (_relaying()) revert LedgerNestedBatch();
        _checkSubmitter();
        uint256 n = calls.length;
        if (n > MAX_BATCH) revert LedgerBatchTooLarge(n, MAX_BATCH);
        failures = new bytes[](n);
        // The submitter was checked once for the whole batch; the operations skip that check.
        assembly ("memory-safe") {
            tstore(_RELAYING_SLOT, 1)
        }
        for (uint256 i; i < n; ++i) {
            // Delegatecall keeps msg.sender (the relayer); a revert rolls back that operation only.
            // In assembly so that each call reuses the same scratch memory (measured: about 600 gas
            // per operation less than `address(this).delegatecall(calls[i])` in a batch of 100).
            bytes calldata call = calls[i];
            bool ok;
            uint256 gasBefore = gasleft();
            assembly ("memory-safe") {
                let ptr := mload(0x40)
                calldatacopy(ptr, call.offset, call.length)
                ok := delegatecall(gas(), address(), ptr, call.length, 0, 0)
            }
            if (!ok) {
                // An operation that ran out of the gas forwarded to it (63/64 of what was left,
                // EIP-150) would be valid with more gas: fail the whole batch, so that the gas
                // estimate covers every operation, rather than record a false rejection.
                if (gasleft() <= gasBefore / 64) revert LedgerBatchOutOfGas(i);
                uint256 size;
                assembly ("memory-safe") {
                    size := returndatasize()
                }
                bytes memory reason;
                if (size == 0) {
                    // Keep "failed" distinguishable from "recorded" (empty) in the result.
                    reason = abi.encodeWithSelector(LedgerCallFailed.selector);
                } else {
                    reason = new bytes(size);
                    assembly ("memory-safe") {
                        returndatacopy(add(reason, 0x20), 0, size)
                    }
                }
                failures[i] = reason;
                emit OperationFailed(i, reason);
            }
        }
        assembly ("memory-safe") {
            tstore(_RELAYING_SLOT, 0)
        }
    }

    // ------------------------------------------------------------------------------------------
    // Participants (governor)
    // ------------------------------------------------------------------------------------------

    function accredit(Accredit calldata op, Signature calldata sig) external {
        bytes32 id = _authorizeGovernor(
            keccak256(
                abi.encode(
                    ACCREDIT_TYPEHASH,
                    op.actor,
                    op.nonce,
                    op.deadline,
                    op.participant,
                    op.roles,
                    op.facility,
                    op.country
                )
            ),
            op.actor,
            op.nonce,
            op.deadline,
            sig
        );
        if (op.participant == address(0)) revert LedgerUnknownParticipant(op.participant);
        if (op.roles == 0 || op.roles & ~ALL_ROLES != 0) revert LedgerInvalidRoles(op.roles);
        _checkCountry(op.country);
        ParticipantState memory p = _participants[op.participant];
        if (p.index == 0) {
            // Cannot overflow: one index per accredited address, and 2^32 accreditations would
            // exceed any chain's gas.
            unchecked {
                p.index = ++_participantCount;
            }
            _accounts[p.index] = op.participant;
        }
        p.roles = op.roles;
        p.country = op.country;
        _participants[op.participant] = p;
        _facilities[op.participant] = op.facility;
        emit ParticipantAccredited(op.participant, id, p.index, op.roles, op.facility, op.country);
    }

    function revoke(Revoke calldata op, Signature calldata sig) external {
        bytes32 id = _authorizeGovernor(
            keccak256(abi.encode(REVOKE_TYPEHASH, op.actor, op.nonce, op.deadline, op.participant)),
            op.actor,
            op.nonce,
            op.deadline,
            sig
        );
        ParticipantState storage p = _participants[op.participant];
        uint8 previous = p.roles;
        if (previous == 0) revert LedgerUnknownParticipant(op.participant);
        p.roles = 0;
        emit ParticipantRevoked(op.participant, id, previous);
    }

    function certify(Certify calldata op, Signature calldata sig) external {
        bytes32 id = _authorizeGovernor(
            keccak256(
                abi.encode(
                    CERTIFY_TYPEHASH,
                    op.actor,
                    op.nonce,
                    op.deadline,
                    op.participant,
                    op.scheme,
                    op.validUntil,
                    op.documentHash
                )
            ),
            op.actor,
            op.nonce,
            op.deadline,
            sig
        );
        if (_participants[op.participant].index == 0) revert LedgerUnknownParticipant(op.participant);
        _certifications[op.participant][op.scheme] = Certification(op.validUntil, op.documentHash);
        emit CertificationRecorded(op.participant, op.scheme, id, op.validUntil, op.documentHash);
    }

    // ------------------------------------------------------------------------------------------
    // Lots
    // ------------------------------------------------------------------------------------------

    function commission(Commission calldata op, Signature calldata sig) external {
        (bytes32 id, ParticipantState memory actor) = _authorize(
            keccak256(
                abi.encode(
                    COMMISSION_TYPEHASH,
                    op.actor,
                    op.nonce,
                    op.deadline,
                    op.lot,
                    op.material,
                    op.quantity,
                    op.feedstock,
                    op.footprint,
                    op.documentHash
                )
            ),
            op.actor,
            op.nonce,
            op.deadline,
            sig,
            MINE | RECYCLER
        );
        // A participant holding both roles chooses by feedstock; each feedstock needs its role.
        bool primary = op.feedstock == PRIMARY;
        if (
            op.feedstock > POST_CONSUMER || (primary && actor.roles & MINE == 0)
                || (!primary && actor.roles & RECYCLER == 0)
        ) revert LedgerInvalidFeedstock(op.actor, op.feedstock);
        _create(op.lot, actor.index, op.material, op.quantity);
        emit LotCommissioned(
            op.lot,
            op.actor,
            id,
            op.material,
            op.quantity,
            op.feedstock,
            op.footprint,
            op.documentHash,
            _facilities[op.actor],
            actor.country
        );
    }

    function ship(Ship calldata op, Signature calldata sig) external {
        (bytes32 id, ParticipantState memory actor) = _authorize(
            keccak256(abi.encode(SHIP_TYPEHASH, op.actor, op.nonce, op.deadline, op.lot, op.recipient)),
            op.actor,
            op.nonce,
            op.deadline,
            sig,
            CUSTODY_ROLES
        );
        LotState storage l = _heldLot(op.lot, op.actor, actor.index);
        ParticipantState memory to = _participants[op.recipient];
        if (to.roles & CUSTODY_ROLES == 0) revert LedgerMissingRole(op.recipient, CUSTODY_ROLES, to.roles);
        if (to.index == actor.index) revert LedgerSelfShipment(op.lot);
        l.recipient = to.index;
        emit LotShipped(op.lot, op.actor, op.recipient, id);
    }

    function receiveLot(Handoff calldata op, Signature calldata sig) external {
        (bytes32 id, ParticipantState memory actor) = _authorize(
            _handoffHash(RECEIVE_TYPEHASH, op), op.actor, op.nonce, op.deadline, sig, CUSTODY_ROLES
        );
        LotState storage l = _shipmentTo(op.lot, op.actor, actor.index);
        address sender = _accounts[l.custodian];
        if (sender != op.counterparty) revert LedgerWrongCounterparty(op.lot, op.counterparty, sender);
        (l.custodian, l.recipient) = (actor.index, 0);
        emit LotReceived(op.lot, sender, op.actor, id);
    }

    function reject(Handoff calldata op, Signature calldata sig) external {
        (bytes32 id, ParticipantState memory actor) = _authorize(
            _handoffHash(REJECT_TYPEHASH, op), op.actor, op.nonce, op.deadline, sig, CUSTODY_ROLES
        );
        LotState storage l = _shipmentTo(op.lot, op.actor, actor.index);
        address sender = _accounts[l.custodian];
        if (sender != op.counterparty) revert LedgerWrongCounterparty(op.lot, op.counterparty, sender);
        l.recipient = 0;
        emit ShipmentRejected(op.lot, sender, op.actor, id);
    }

    function recall(Handoff calldata op, Signature calldata sig) external {
        (bytes32 id, ParticipantState memory actor) = _authorize(
            _handoffHash(RECALL_TYPEHASH, op), op.actor, op.nonce, op.deadline, sig, CUSTODY_ROLES
        );
        LotState storage l = _existingLot(op.lot);
        if (l.custodian != actor.index) revert LedgerNotCustodian(op.lot, op.actor, _accounts[l.custodian]);
        if (l.recipient == 0) revert LedgerLotNotInTransit(op.lot);
        address recipient = _accounts[l.recipient];
        if (recipient != op.counterparty) revert LedgerWrongCounterparty(op.lot, op.counterparty, recipient);
        l.recipient = 0;
        emit ShipmentRecalled(op.lot, op.actor, recipient, id);
    }

    function transform(Transform calldata op, Signature calldata sig) external {
        (bytes32 id, ParticipantState memory actor) = _authorize(
            keccak256(
                abi.encode(
                    TRANSFORM_TYPEHASH,
                    op.actor,
                    op.nonce,
                    op.deadline,
                    _hashInputs(op.inputs),
                    _hashOutputs(op.outputs),
                    op.footprint
                )
            ),
            op.actor,
            op.nonce,
            op.deadline,
            sig,
            PROCESSOR | CELL_MAKER
        );
        uint256 nIn = op.inputs.length;
        uint256 nOut = op.outputs.length;
        if (nIn == 0 || nOut == 0) revert LedgerEmptyOperation();
        emit LotsTransformed(id, op.actor, nIn, nOut, op.footprint);
        uint32[] memory inputMaterials = _consume(op.inputs, id, op.actor, actor.index);
        for (uint256 i; i < nOut; ++i) {
            Output calldata o = op.outputs[i];
            _create(o.lot, actor.index, o.material, o.quantity);
            emit LotProduced(o.lot, id, op.actor, o.material, o.quantity, o.documentHash);
        }
        _checkMassBalance(op.inputs, inputMaterials, op.outputs);
    }

    function bindPassport(BindPassport calldata op, Signature calldata sig) external {
        (bytes32 id, ParticipantState memory actor) = _authorize(
            keccak256(
                abi.encode(
                    BIND_PASSPORT_TYPEHASH,
                    op.actor,
                    op.nonce,
                    op.deadline,
                    op.passport,
                    _hashInputs(op.inputs),
                    op.footprint,
                    op.documentHash
                )
            ),
            op.actor,
            op.nonce,
            op.deadline,
            sig,
            CELL_MAKER
        );
        if (op.passport == bytes32(0)) revert LedgerInvalidPassportId();
        if (_binders[op.passport] != address(0)) revert LedgerPassportAlreadyBound(op.passport);
        if (op.inputs.length == 0) revert LedgerEmptyOperation();
        _binders[op.passport] = op.actor;
        emit PassportBound(op.passport, id, op.actor, op.inputs.length, op.footprint, op.documentHash);
        _consume(op.inputs, id, op.actor, actor.index);
    }

    // ------------------------------------------------------------------------------------------
    // Corrections and attestations
    // ------------------------------------------------------------------------------------------

    function correct(Correct calldata op, Signature calldata sig, bytes calldata authorship) external {
        (bytes32 id, ParticipantState memory actor) = _authorizeAny(
            keccak256(
                abi.encode(
                    CORRECT_TYPEHASH,
                    op.actor,
                    op.nonce,
                    op.deadline,
                    op.target,
                    op.reason,
                    keccak256(abi.encodePacked(op.corrective))
                )
            ),
            op.actor,
            op.nonce,
            op.deadline,
            sig
        );
        if (op.reason != DID_NOT_OCCUR && op.reason != INCORRECT_DATA) revert LedgerInvalidCode(op.reason);
        if (actor.roles & AUDITOR == 0) _checkAuthorship(op.target, op.actor, authorship);
        emit EventCorrected(op.target, id, op.actor, op.reason, op.corrective);
    }

    function attest(Attest calldata op, Signature calldata sig) external {
        (bytes32 id,) = _authorize(
            keccak256(
                abi.encode(
                    ATTEST_TYPEHASH, op.actor, op.nonce, op.deadline, op.passport, op.verdict, op.reportHash
                )
            ),
            op.actor,
            op.nonce,
            op.deadline,
            sig,
            AUDITOR
        );
        if (op.verdict != PASS && op.verdict != FAIL) revert LedgerInvalidCode(op.verdict);
        if (_binders[op.passport] == address(0)) revert LedgerUnknownPassport(op.passport);
        emit PassportAttested(op.passport, id, op.actor, op.verdict, op.reportHash);
    }

    // ------------------------------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------------------------------

    function lot(bytes32 id)
        external
        view
        returns (address custodian, address recipient, uint256 remaining, uint32 material)
    {
        LotState memory l = _lots[id];
        return (_accounts[l.custodian], _accounts[l.recipient], l.remaining, l.material);
    }

    function participant(address account)
        external
        view
        returns (uint32 index, uint8 roles, bytes2 country, bytes32 facility)
    {
        ParticipantState memory p = _participants[account];
        return (p.index, p.roles, p.country, _facilities[account]);
    }

    function certification(address account, bytes32 scheme)
        external
        view
        returns (uint64 validUntil, bytes32 documentHash)
    {
        Certification memory c = _certifications[account][scheme];
        return (c.validUntil, c.documentHash);
    }

    function passportBinder(bytes32 passport) external view returns (address) {
        return _binders[passport];
    }

    function nonceUsed(address actor, uint256 nonce) public view returns (bool) {
        return _nonceBits[actor][nonce >> 8] & (1 << (nonce & 0xff)) != 0;
    }

    function nonceBitmap(address actor, uint256 word) external view returns (uint256) {
        return _nonceBits[actor][word];
    }

    function governor() external view returns (address) {
        return _governor;
    }

    function eventId(bytes32 structHash) external view returns (bytes32) {
        return _hashTypedDataV4(structHash);
    }

    function maxBatchSize() external pure returns (uint256) {
        return MAX_BATCH;
    }

    // ------------------------------------------------------------------------------------------
    // Internal
    // ------------------------------------------------------------------------------------------

    /// Checks the submitter, the deadline, the signature and the nonce, in that order, and returns
    /// the event id. Every operation passes through here exactly once.
    function _verify(bytes32 structHash, address actor, uint256 nonce, uint256 deadline, Signature calldata sig)
        private
        returns (bytes32 id)
    {
        _checkSubmitter();
        if (block.timestamp > deadline) revert LedgerExpiredDeadline(deadline, block.timestamp);
        id = _hashTypedDataV4(structHash);
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(id, sig.v, sig.r, sig.s);
        if (err == ECDSA.RecoverError.InvalidSignatureS) revert LedgerHighSSignature(sig.s);
        if (err != ECDSA.RecoverError.NoError) revert LedgerInvalidSignature();
        if (signer != actor) revert LedgerSignerMismatch(signer, actor);
        mapping(uint256 => uint256) storage words = _nonceBits[actor];
        uint256 bit = 1 << (nonce & 0xff);
        uint256 bits = words[nonce >> 8];
        if (bits & bit != 0) revert LedgerNonceUsed(actor, nonce);
        words[nonce >> 8] = bits | bit;
    }

    function _authorize(
        bytes32 structHash,
        address actor,
        uint256 nonce,
        uint256 deadline,
        Signature calldata sig,
        uint8 required
    ) private returns (bytes32 id, ParticipantState memory p) {
        id = _verify(structHash, actor, nonce, deadline, sig);
        p = _participants[actor];
        if (p.roles & required == 0) revert LedgerMissingRole(actor, required, p.roles);
    }

    function _authorizeAny(
        bytes32 structHash,
        address actor,
        uint256 nonce,
        uint256 deadline,
        Signature calldata sig
    ) private returns (bytes32 id, ParticipantState memory p) {
        id = _verify(structHash, actor, nonce, deadline, sig);
        p = _participants[actor];
        if (p.roles == 0 && actor != _governor) revert LedgerMissingRole(actor, ALL_ROLES, 0);
    }

    function _authorizeGovernor(
        bytes32 structHash,
        address actor,
        uint256 nonce,
        uint256 deadline,
        Signature calldata sig
    ) private returns (bytes32 id) {
        id = _verify(structHash, actor, nonce, deadline, sig);
        if (actor != _governor) revert LedgerNotGovernor(actor);
    }

    function _relaying() private view returns (bool relaying) {
        assembly ("memory-safe") {
            relaying := tload(_RELAYING_SLOT)
        }
    }

    function _checkSubmitter() private view {
        if (_relaying()) return;
        if (msg.sender != _governor && _participants[msg.sender].roles & RELAYER == 0) {
            revert LedgerUnauthorizedSubmitter(msg.sender);
        }
    }

    function _checkCountry(bytes2 country) private pure {
        bytes1 a = country[0];
        bytes1 b = country[1];
        if (a < 0x41 || a > 0x5a || b < 0x41 || b > 0x5a) revert LedgerInvalidCountry(country);
    }

    function _checkAuthorship(bytes32 target, address account, bytes calldata authorship) private view {
        // encodeData of every operation type starts: typehash, actor, nonce.
        if (authorship.length < 96 || _hashTypedDataV4(keccak256(authorship)) != target) {
            revert LedgerNotEventAuthor(target, account);
        }
        address author = address(uint160(uint256(bytes32(authorship[32:64]))));
        uint256 nonce = uint256(bytes32(authorship[64:96]));
        // The nonce being used proves that an operation of this author with this nonce was recorded.
        if (author != account || !nonceUsed(author, nonce)) revert LedgerNotEventAuthor(target, account);
    }

    function _handoffHash(bytes32 typehash, Handoff calldata op) private pure returns (bytes32) {
        return keccak256(abi.encode(typehash, op.actor, op.nonce, op.deadline, op.lot, op.counterparty));
    }

    function _existingLot(bytes32 id) private view returns (LotState storage l) {
        l = _lots[id];
        if (l.custodian == 0) revert LedgerUnknownLot(id);
    }

    /// The lot, checked to be held by `index`, not in transit and not closed.
    function _heldLot(bytes32 id, address account, uint32 index) private view returns (LotState storage l) {
        l = _existingLot(id);
        if (l.custodian != index) revert LedgerNotCustodian(id, account, _accounts[l.custodian]);
        if (l.recipient != 0) revert LedgerLotInTransit(id, _accounts[l.recipient]);
        if (l.remaining == 0) revert LedgerLotClosed(id);
    }

    /// The lot, checked to be in transit to `index`.
    function _shipmentTo(bytes32 id, address account, uint32 index) private view returns (LotState storage l) {
        l = _existingLot(id);
        if (l.recipient == 0) revert LedgerLotNotInTransit(id);
        if (l.recipient != index) revert LedgerNotRecipient(id, account, _accounts[l.recipient]);
    }

    function _create(bytes32 id, uint32 custodian, uint32 material, uint96 quantity) private {
        if (id == bytes32(0)) revert LedgerInvalidLotId();
        if (quantity == 0) revert LedgerZeroQuantity(id);
        if (_lots[id].custodian != 0) revert LedgerLotExists(id);
        _lots[id] = LotState(custodian, 0, quantity, material);
    }

    /// Every consumption of a lot's quantity goes through here; returns the input materials.
    function _consume(Input[] calldata inputs, bytes32 id, address actor, uint32 index)
        private
        returns (uint32[] memory materials)
    {
        uint256 n = inputs.length;
        materials = new uint32[](n);
        for (uint256 i; i < n; ++i) {
            Input calldata input = inputs[i];
            LotState storage l = _heldLot(input.lot, actor, index);
            uint96 remaining = l.remaining;
            if (input.quantity == 0) revert LedgerZeroQuantity(input.lot);
            if (input.quantity > remaining) {
                revert LedgerInsufficientQuantity(input.lot, remaining, input.quantity);
            }
            // Cannot underflow: checked just above.
            unchecked {
                remaining -= input.quantity;
            }
            l.remaining = remaining;
            materials[i] = l.material;
            emit LotConsumed(input.lot, id, actor, input.quantity, remaining);
        }
    }

    /// For every material that appears among both inputs and outputs, the outputs of that material
    /// must not exceed the inputs of that material consumed. Outputs of a new material (refining)
    /// are not bounded: reagents add mass the ledger does not see.
    function _checkMassBalance(Input[] calldata inputs, uint32[] memory inputMaterials, Output[] calldata outputs)
        private
        pure
    {
        uint256 nIn = inputs.length;
        uint256 nOut = outputs.length;
        for (uint256 j; j < nOut; ++j) {
            uint32 material = outputs[j].material;
            bool seen;
            // Each material is checked once, at its first output.
            for (uint256 k; k < j; ++k) {
                if (outputs[k].material == material) {
                    seen = true;
                    break;
                }
            }
            if (seen) continue;
            uint256 consumed;
            bool present;
            for (uint256 i; i < nIn; ++i) {
                if (inputMaterials[i] == material) {
                    consumed += inputs[i].quantity;
                    present = true;
                }
            }
            if (!present) continue;
            uint256 produced;
            for (uint256 k = j; k < nOut; ++k) {
                if (outputs[k].material == material) produced += outputs[k].quantity;
            }
            if (produced > consumed) revert LedgerMassNotConserved(material, consumed, produced);
        }
    }

    function _hashInputs(Input[] calldata inputs) private pure returns (bytes32) {
        uint256 n = inputs.length;
        bytes32[] memory hashes = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            hashes[i] = keccak256(abi.encode(INPUT_TYPEHASH, inputs[i].lot, inputs[i].quantity));
        }
        return keccak256(abi.encodePacked(hashes));
    }

    function _hashOutputs(Output[] calldata outputs) private pure returns (bytes32) {
        uint256 n = outputs.length;
        bytes32[] memory hashes = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            Output calldata o = outputs[i];
            hashes[i] = keccak256(abi.encode(OUTPUT_TYPEHASH, o.lot, o.material, o.quantity, o.documentHash));
        }
        return keccak256(abi.encodePacked(hashes));
    }
}
