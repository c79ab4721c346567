"""The web suites' fixtures: the recorded chain (ore mined in CD, refined in FI, bound to PASS-1)
with an auditor's attestation added, recorded once per session; each module gets its own copy
(the embedded anvil node restarts from its state), an app over it, and a read token."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import closing

import pytest
from eth_utils import keccak
from fastapi.testclient import TestClient

from mine2cell.access.tokens import TokenStore
from mine2cell.api.app import create_app
from mine2cell.config import Settings
from mine2cell.ids import parse_id
from mine2cell.relay.outbox import State
from mine2cell.service import Service
from tests.e2e.cli_support import PASSPHRASE
from tests.recorded import Template, record_chain

REPORT_HASH = keccak(text="the auditor's report of PASS-1")


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    recorded = record_chain(tmp_path_factory.mktemp("web-template") / "data")
    settings = Settings(data_dir=recorded.data_dir, rpc_url=None, ledger_address=recorded.ledger)
    with Service(settings, passphrase=lambda: PASSPHRASE) as service:
        auditor = service.client("auditor")
        accepted = auditor.attest(
            parse_id("PASS-1", "passport"), verdict=1, report_hash=REPORT_HASH
        )
        status = service.settle([accepted.event_id])[accepted.event_id]
        assert status.state is State.CONFIRMED, status
    return recorded


@pytest.fixture(scope="module")
def settings(template: Template, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data_dir = tmp_path_factory.mktemp("web") / "data"
    shutil.copytree(template.data_dir, data_dir)
    return Settings(data_dir=data_dir, rpc_url=None, ledger_address=template.ledger)


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, passphrase=lambda: PASSPHRASE)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def read_token(settings: Settings) -> str:
    with closing(TokenStore(settings.access_db)) as tokens:
        _, text = tokens.create("read", "web tests")
    return text


@pytest.fixture(scope="module")
def reader(read_token: str) -> dict[str, str]:
    """Headers with a read token."""
    return {"Authorization": f"Bearer {read_token}"}
