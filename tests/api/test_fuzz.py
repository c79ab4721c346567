"""Property-based fuzzing of the HTTP API with schemathesis, from the app's own OpenAPI document:
every operation gets generated inputs, valid and invalid (schemathesis' examples, coverage and
fuzzing phases), and every answer must be documented: no server error, a documented status code
and content type, and a body that matches the documented schema.

The app is the one `create_app` builds over the recorded chain of tests/recorded.py (the
embedded anvil node, the relay and the index follower in the app's own threads); schemathesis
calls it in-process through ASGI, with a read token (and, in its own cases, without one). The
run is bounded (``MAX_EXAMPLES`` per operation) and derandomized, so CI runs the same cases every
time. POST /v1/operations gets its own property tests: any JSON, documents of every operation
type with fields of about the right shapes, and bytes that are not JSON are all 422 problems.
"""

from __future__ import annotations

import shutil
from contextlib import closing
from pathlib import Path
from typing import Any, cast

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.python.asgi import get_client, shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mine2cell.access.tokens import TokenStore
from mine2cell.api.app import create_app
from mine2cell.api.problems import PROBLEM_JSON, Problem
from mine2cell.config import Settings
from mine2cell.signing.eip712 import OPERATION_TYPES, Operation
from tests.e2e.cli_support import PASSPHRASE
from tests.recorded import Template, record_chain

pytestmark = pytest.mark.anvil

MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _document() -> dict[str, Any]:
    """The app's OpenAPI document. It depends on the routes only, so an app that is never started
    gives it; the module's schema is loaded at import (schemathesis' lazy ``from_fixture`` reads
    ``Node._nodeid``, which pytest 9.2 no longer has), and the started app is handed to each call.
    """
    unused = Settings(data_dir=Path("/nonexistent/mine2cell"), rpc_url=None, ledger_address=None)
    return create_app(unused).openapi()


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return record_chain(tmp_path_factory.mktemp("fuzz-template") / "data")


@pytest.fixture(scope="module")
def data_dir(template: Template, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("fuzz") / "data"
    shutil.copytree(template.data_dir, data_dir)
    return data_dir


@pytest.fixture(scope="module")
def reader(data_dir: Path) -> dict[str, str]:
    """A read token, so the fuzzer gets past the access check into the detail routes."""
    with closing(TokenStore(data_dir / "access.db")) as tokens:
        _, text = tokens.create("read", "fuzzing")
    return {"Authorization": f"Bearer {text}"}


@pytest.fixture(scope="module")
def app(template: Template, data_dir: Path) -> FastAPI:
    """The app over a copy of the recorded chain. schemathesis starts its lifespan (node, relay,
    index) on a test's first call and ends it after the test (its pytest plugin's teardown), so
    each test runs the app as a restarted server would."""
    settings = Settings(data_dir=data_dir, rpc_url=None, ledger_address=template.ledger)
    return create_app(settings, passphrase=lambda: PASSPHRASE)


@schema.parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow, hypothesis.HealthCheck.filter_too_much],
)
def test_every_answer_is_documented(case: Case[Any], app: FastAPI, reader: dict[str, str]) -> None:
    case.call_and_validate(checks=CHECKS, app=app, headers=reader)


def test_the_fuzzed_document_is_the_served_one_and_covers_every_route(app: FastAPI) -> None:
    served = schema["/v1/health"]["GET"].Case().call(app=app)
    assert served.status_code == 200
    assert app.openapi() == DOCUMENT
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results), results  # schemathesis could read every one
    documented = {(operation.method.upper(), operation.path) for operation in operations}

    assert {
        ("GET", "/v1/health"),
        ("GET", "/v1/ready"),
        ("POST", "/v1/operations"),
        ("GET", "/v1/operations/{event_id}"),
        ("GET", "/v1/passports/{passport}/provenance"),
        ("GET", "/v1/passports/{passport}/summary"),
    } <= documented


def _hex(raw: bytes) -> str:
    return "0x" + raw.hex()


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
UINT = st.integers(min_value=-(2**300), max_value=2**300) | st.integers().map(str) | JSON


def _field(sol_type: str) -> st.SearchStrategy[Any]:
    """Values of about the right shape for a message field, valid or not."""
    if sol_type == "address":
        return st.binary(min_size=19, max_size=21).map(_hex) | JSON
    if sol_type.startswith("uint"):
        return UINT
    if sol_type in ("bytes32", "bytes2"):
        return st.binary(max_size=33).map(_hex) | st.text(max_size=3) | JSON
    item = {"lot": _field("bytes32"), "quantity": UINT}
    if sol_type == "Output[]":
        item |= {"material": UINT, "documentHash": _field("bytes32")}
    if sol_type == "bytes32[]":
        return st.lists(_field("bytes32"), max_size=3) | JSON
    return st.lists(st.fixed_dictionaries(item), max_size=3) | JSON


def _document_of(op_type: type[Operation]) -> st.SearchStrategy[dict[str, Any]]:
    fields = [("actor", "address"), ("nonce", "uint256"), ("deadline", "uint256")]
    fields += [(sol_name, sol_type) for _, sol_name, sol_type in op_type.FIELDS]
    message = st.fixed_dictionaries({name: _field(sol_type) for name, sol_type in fields})
    return st.fixed_dictionaries(
        {"type": st.just(op_type.PRIMARY), "message": message | JSON},
        optional={
            "signature": st.binary(min_size=64, max_size=66).map(_hex) | JSON,
            "eventId": st.binary(min_size=32, max_size=32).map(_hex) | JSON,
            "proof": st.binary(max_size=40).map(_hex) | JSON,
            "extra": JSON,
        },
    )


# Documents of every operation type with fields of about the right shapes (a signature that
# recovers to the actor is out of reach), and any other JSON.
BODIES = st.sampled_from(OPERATION_TYPES).flatmap(_document_of) | JSON


def _problem_422(response: Any) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] in (PROBLEM_JSON, [PROBLEM_JSON]), response.headers
    problem = Problem.model_validate(response.json())
    assert problem.status == 422 and problem.errors, response.text


@hypothesis.given(body=BODIES)
@hypothesis.settings(max_examples=150, derandomize=True, deadline=None, database=None)
@hypothesis.example(body={"type": "Ship", "message": {}, "signature": "0x"})
@hypothesis.example(body={"type": "Nope", "message": {}, "signature": "0x" + "00" * 65})
def test_any_json_body_that_is_no_signed_operation_is_a_422_problem(
    app: FastAPI, body: Any
) -> None:
    case = schema["/v1/operations"]["POST"].Case(body=body, media_type="application/json")

    _problem_422(case.call_and_validate(checks=CHECKS, app=app))


@hypothesis.given(raw=st.binary(max_size=64))
@hypothesis.settings(max_examples=60, derandomize=True, deadline=None, database=None)
@hypothesis.example(raw=b"\xff\xfe{}")  # not UTF-8: FastAPI answered 400, undocumented
@hypothesis.example(raw=b"[" * 100_000)  # nested too deep for the JSON parser: 400 as well
@hypothesis.example(raw=b'{"type": "Ship"')  # malformed JSON
def test_a_body_that_is_not_json_is_a_422_problem(app: FastAPI, raw: bytes) -> None:
    # cast: schemathesis types ASGI scopes as dicts, Starlette as mutable mappings.
    with get_client(cast(Any, app)) as client:
        response = client.post(
            "/v1/operations", data=raw, headers={"content-type": "application/json"}
        )

    _problem_422(response)


def test_metrics_still_answer_after_the_app_is_started_again(
    app: FastAPI, reader: dict[str, str]
) -> None:
    # The fuzzer found it: each start registered one more collector, and the stopped runtime's
    # collector read a closed outbox, a 500 for every scrape after a restart.
    for _ in range(2):
        with get_client(cast(Any, app)) as client:
            response = client.get("/metrics", headers=reader)
        shutdown_lifespans()

        assert response.status_code == 200, response.text
        assert "mine2cell_relay_operations" in response.text
