"""Encrypted key files: created private, never overwritten, never shown."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from eth_keys import keys
from typer.testing import CliRunner

from mine2cell.cli import app
from mine2cell.errors import InvalidInput
from mine2cell.signing.eip712 import SECP256K1_N
from mine2cell.signing.keystore import Keystore, KeystoreError, parse_private_key

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
KEY_ADDRESS = keys.PrivateKey(KEY).public_key.to_checksum_address()
FAST_SCRYPT = 2**10  # the tests' cost; the product uses eth-account's default


@pytest.fixture
def store(tmp_path: Path) -> Keystore:
    return Keystore(tmp_path / "keys", scrypt_n=FAST_SCRYPT)


def test_new_key_file_is_readable_by_its_owner_only(store: Keystore) -> None:
    entry = store.new("mine", "pass phrase")

    assert stat.S_IMODE(entry.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700


def test_new_key_decrypts_to_the_address_it_reports(store: Keystore) -> None:
    entry = store.new("mine", "pass phrase")

    assert store.signer("mine", "pass phrase").address == entry.address


def test_imported_key_keeps_its_address_and_is_stored_encrypted(store: Keystore) -> None:
    entry = store.import_key("refiner", KEY, "pass phrase")

    assert entry.address == KEY_ADDRESS
    assert KEY.hex() not in entry.path.read_text()
    assert store.signer("refiner", "pass phrase").address == KEY_ADDRESS


def test_wrong_passphrase_is_refused(store: Keystore) -> None:
    store.import_key("refiner", KEY, "right")

    with pytest.raises(KeystoreError, match="wrong passphrase"):
        store.signer("refiner", "wrong")


def test_existing_key_is_never_overwritten(store: Keystore) -> None:
    first = store.import_key("refiner", KEY, "pass phrase")
    before = first.path.read_bytes()

    with pytest.raises(KeystoreError, match="exists already"):
        store.new("refiner", "pass phrase")
    assert first.path.read_bytes() == before


@pytest.mark.parametrize("name", ["", "../escape", "a/b", "-dash-first", "x" * 65])
def test_key_name_that_could_escape_the_directory_or_confuse_is_refused(
    store: Keystore, name: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        store.new(name, "pass phrase")
    assert err.value.field == "name"


def test_empty_passphrase_is_refused(store: Keystore) -> None:
    with pytest.raises(InvalidInput) as err:
        store.new("mine", "")
    assert err.value.field == "passphrase"


def test_entries_list_names_and_addresses_without_decrypting(store: Keystore) -> None:
    store.import_key("b-refiner", KEY, "one")
    made = store.new("a-mine", "two")

    assert [(e.name, e.address) for e in store.entries()] == [
        ("a-mine", made.address),
        ("b-refiner", KEY_ADDRESS),
    ]


def test_unknown_key_names_the_command_that_lists_keys(store: Keystore) -> None:
    with pytest.raises(KeystoreError, match="keys list"):
        store.entry("nobody")


@pytest.mark.parametrize("text", ["0x1234", "zz" * 32, KEY.hex() + "00"])
def test_malformed_private_key_is_refused_without_echoing_it(text: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_private_key(text)
    assert text not in str(err.value)


@pytest.mark.parametrize("value", [0, SECP256K1_N, 2**256 - 1])
def test_private_key_outside_the_curve_order_is_refused(value: int) -> None:
    with pytest.raises(InvalidInput, match="range"):
        parse_private_key(value.to_bytes(32, "big").hex())


def test_private_key_accepts_0x_and_surrounding_whitespace() -> None:
    assert parse_private_key(f"  0x{KEY.hex()}\n") == KEY


# -- command line ------------------------------------------------------------------------------

runner = CliRunner()


def test_keys_import_list_and_address_never_show_the_key(tmp_path: Path) -> None:
    key_file = tmp_path / "key.hex"
    key_file.write_text(KEY.hex())
    env = {"MINE2CELL_PASSPHRASE": "pass phrase"}
    data = ["--data-dir", str(tmp_path / "data")]

    imported = runner.invoke(
        app, ["keys", "import", "refiner", "--key-file", str(key_file), *data], env=env
    )
    listed = runner.invoke(app, ["keys", "list", *data])
    address = runner.invoke(app, ["keys", "address", "refiner", *data])

    assert imported.exit_code == listed.exit_code == address.exit_code == 0, imported.output
    assert KEY_ADDRESS in imported.output and KEY_ADDRESS in listed.output
    assert address.output.strip() == KEY_ADDRESS
    for result in (imported, listed, address):
        assert KEY.hex() not in result.output


def test_keys_new_without_a_passphrase_source_fails_with_one_line(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["keys", "new", "mine", "--data-dir", str(tmp_path)],
        env={"MINE2CELL_PASSPHRASE": None},
    )

    assert result.exit_code == 1
    assert "MINE2CELL_PASSPHRASE" in result.output
    assert not (tmp_path / "keys" / "mine.json").exists()


def test_keys_new_reads_the_passphrase_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text("from a file\n")
    data = ["--data-dir", str(tmp_path / "data")]

    result = runner.invoke(app, ["keys", "new", "mine", "--passphrase-file", str(secret), *data])

    assert result.exit_code == 0, result.output
    store = Keystore(tmp_path / "data" / "keys")
    assert store.signer("mine", "from a file").address == store.entry("mine").address
