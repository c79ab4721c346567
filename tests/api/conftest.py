"""The API suites' fixtures: each module gets its own copy of the recorded chain (the embedded
anvil node restarts from its state), an app over it, and a read token."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mine2cell.access.tokens import TokenStore
from mine2cell.api.app import create_app
from mine2cell.config import Settings
from tests.e2e.cli_support import PASSPHRASE
from tests.recorded import Template, record_chain


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return record_chain(tmp_path_factory.mktemp("api-template") / "data")


@pytest.fixture(scope="module")
def data_dir(template: Template, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("api") / "data"
    shutil.copytree(template.data_dir, data_dir)
    return data_dir


@pytest.fixture(scope="module")
def client(template: Template, data_dir: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=data_dir, rpc_url=None, ledger_address=template.ledger)
    with TestClient(create_app(settings, passphrase=lambda: PASSPHRASE)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def reader(data_dir: Path) -> dict[str, str]:
    """Headers with a read token."""
    with closing(TokenStore(data_dir / "access.db")) as tokens:
        _, text = tokens.create("read", "api tests")
    return {"Authorization": f"Bearer {text}"}
