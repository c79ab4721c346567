"""The mine2cell command line: wires settings to components; no logic of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mine2cell import __version__
from mine2cell.chain.artifacts import load_artifact
from mine2cell.config import Settings
from mine2cell.errors import Mine2CellError

app = typer.Typer(
    name="mine2cell",
    help="Battery raw-material traceability ledger: from mine to cell.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Where keys, the node state and the index live.", show_default=False
    ),
]
RpcUrl = Annotated[
    str | None,
    typer.Option("--rpc-url", help="JSON-RPC URL of a node (default: the embedded dev node)."),
]


def _settings(data_dir: Path | None, rpc_url: str | None) -> Settings:
    overrides: dict[str, object] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if rpc_url is not None:
        overrides["rpc_url"] = rpc_url
    return Settings(**overrides)  # type: ignore[arg-type]


def _fail(exc: Mine2CellError) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
    return typer.Exit(code=1)


@app.command()
def demo(data_dir: DataDir = None, rpc_url: RpcUrl = None) -> None:
    """Deploy a ledger and record a small battery supply chain on it, mine to passport."""
    from mine2cell.demo import run_demo

    try:
        run_demo(_settings(data_dir, rpc_url), console)
    except Mine2CellError as exc:
        raise _fail(exc) from None


@app.command()
def contract() -> None:
    """Show how the shipped ledger contract was built (compare with a deployed one)."""
    from eth_utils import keccak

    artifact = load_artifact("Ledger")
    console.print(f"contract        {artifact.contract_name}")
    console.print(f"compiler        {artifact.compiler_version}")
    settings = artifact.settings
    optimizer = settings.get("optimizer", {})
    console.print(
        f"settings        evm {settings.get('evmVersion')}, via-IR {settings.get('viaIR')}, "
        f"optimizer runs {optimizer.get('runs')}"
    )
    console.print(f"runtime size    {len(artifact.deployed_bytecode):,} bytes")
    console.print(f"runtime keccak  0x{keccak(artifact.deployed_bytecode).hex()}")


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)


def main() -> None:
    app()
