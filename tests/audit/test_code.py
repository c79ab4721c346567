"""The ledger's deployed code against the artifact built from contracts/: a real deployment
matches, anything else is named with where it differs (on eth-tester and on anvil)."""

from __future__ import annotations

from eth_utils import keccak
from web3 import Web3

from mine2cell.audit.code import check_code
from mine2cell.chain.artifacts import load_artifact
from tests.conftest import Cast


def deploy_runtime(w3: Web3, runtime: bytes) -> str:
    """A contract whose runtime code is exactly ``runtime`` (init code that returns it)."""
    size = len(runtime).to_bytes(2, "big")
    init = b"\x61" + size + b"\x80\x61\x00\x0d\x60\x00\x39\x60\x00\xf3" + runtime
    tx = w3.eth.send_transaction({"from": w3.eth.accounts[0], "data": init, "gas": 8_000_000})
    address = w3.eth.wait_for_transaction_receipt(tx)["contractAddress"]
    assert address is not None and bytes(w3.eth.get_code(address)) == runtime
    return str(address)


def test_the_deployed_ledger_is_the_artifacts_code_with_its_immutables(cast: Cast) -> None:
    check = check_code(cast.w3, cast.ledger.address)

    code = bytes(cast.w3.eth.get_code(cast.ledger.address))
    assert (check.matches, check.problem, check.first_difference) == (True, "", None)
    assert check.code_hash == keccak(code) and check.size == check.expected_size == len(code)
    assert len(check.immutables) == len(load_artifact().immutable_ranges) > 0
    governor = bytes(12) + bytes.fromhex(cast.governor.address[2:])
    assert governor in {i.value for i in check.immutables}
    assert check.compiler_version.startswith("0.8.")
    assert set(check.settings) >= {"evmVersion", "optimizer", "viaIR"}
    assert "contracts/Ledger.sol" in check.sources


def test_other_immutable_values_still_match(cast: Cast) -> None:
    runtime = bytearray(load_artifact().deployed_bytecode)
    for start, length in load_artifact().immutable_ranges:
        runtime[start : start + length] = b"\x5a" * length

    check = check_code(cast.w3, deploy_runtime(cast.w3, bytes(runtime)))

    assert check.matches
    assert {i.value for i in check.immutables} == {b"\x5a" * 32}


def test_one_byte_changed_outside_the_immutables_is_found_at_its_offset(cast: Cast) -> None:
    runtime = bytearray(load_artifact().deployed_bytecode)
    runtime[100] ^= 0xFF

    check = check_code(cast.w3, deploy_runtime(cast.w3, bytes(runtime)))

    assert not check.matches and check.first_difference == 100
    assert "differs from the artifact's from byte 100" in check.problem


def test_another_contract_is_named_by_its_size(cast: Cast) -> None:
    check = check_code(cast.w3, deploy_runtime(cast.w3, b"\x60\x00\x60\x00\xfd"))

    assert not check.matches and check.size == 5 and check.immutables == ()
    assert "is 5 bytes, the artifact's" in check.problem


def test_an_address_without_code_is_no_ledger(cast: Cast) -> None:
    check = check_code(cast.w3, cast.outsider.address)

    assert not check.matches and check.size == 0
    assert check.problem == "there is no contract code at this address"
    assert check.to_json()["problem"] == check.problem
