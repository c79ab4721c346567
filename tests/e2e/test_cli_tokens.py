"""`mine2cell token`: a token is printed once, listed without its secret, and revoked by id."""

from __future__ import annotations

import re
from pathlib import Path

from mine2cell.access.tokens import TokenStore
from tests.e2e.cli_support import Cli, make_keys


def test_a_read_token_is_shown_once_and_listed_without_its_secret(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data")

    created = cli("token", "create", "--read", "passport portal").lines()
    listed = cli("token", "list").lines()

    token = created[-1]
    assert re.fullmatch(r"m2c_[0-9a-f]{8}_[A-Za-z0-9_-]{43}", token)
    token_id = token[4:12]
    assert listed == [f"{token_id}  read  active  passport portal"]
    assert TokenStore(tmp_path / "data" / "access.db").verify(token) is not None


def test_a_hosted_token_names_an_existing_key(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data")
    make_keys(tmp_path / "data", ["kolwezi"])

    made = cli("token", "create", "--hosted", "kolwezi", "Kolwezi ERP", "--json").json()
    missing = cli("token", "create", "--hosted", "nobody", "x").refusal()

    assert made["tier"] == "hosted" and made["key"] == "kolwezi"
    assert made["token"].startswith(f"m2c_{made['id']}_")
    assert "no key named 'nobody'" in missing


def test_a_revoked_token_stops_working(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data")
    made = cli("token", "create", "ci", "--json").json()

    revoked = cli("token", "revoke", made["id"]).lines()
    again = cli("token", "revoke", made["id"]).refusal()

    assert revoked == [f"revoked read token {made['id']} (ci)"]
    assert "already revoked" in again
    assert TokenStore(tmp_path / "data" / "access.db").verify(made["token"]) is None
    assert "revoked" in cli("token", "list").stdout
