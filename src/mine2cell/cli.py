"""The mine2cell command line: wires settings to components; no logic of its own."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mine2cell import __version__
from mine2cell.chain.artifacts import load_artifact
from mine2cell.config import Settings
from mine2cell.errors import InvalidInput, Mine2CellError
from mine2cell.signing.keystore import Keystore, parse_private_key

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


keys_app = typer.Typer(help="Encrypted key files of participants, in the data directory.")
app.add_typer(keys_app, name="keys")

PassphraseFile = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        help="Read the passphrase from this file (else MINE2CELL_PASSPHRASE, else a prompt).",
        exists=True,
        dir_okay=False,
    ),
]


def _passphrase(settings: Settings, passphrase_file: Path | None, *, confirm: bool) -> str:
    if passphrase_file is not None:
        return passphrase_file.read_text().rstrip("\n")
    if settings.passphrase is not None:
        return settings.passphrase.get_secret_value()
    if not sys.stdin.isatty():
        raise InvalidInput(
            "passphrase",
            "none given: use --passphrase-file or set MINE2CELL_PASSPHRASE (no terminal to ask)",
        )
    return str(typer.prompt("Passphrase", hide_input=True, confirmation_prompt=confirm))


def _keystore(settings: Settings) -> Keystore:
    return Keystore(settings.keys_dir)


@keys_app.command("new")
def keys_new(
    name: Annotated[str, typer.Argument(help="A name for the key, e.g. kolwezi-mine.")],
    data_dir: DataDir = None,
    passphrase_file: PassphraseFile = None,
) -> None:
    """Create a new random key, encrypted with a passphrase; print its address."""
    settings = _settings(data_dir, None)
    try:
        entry = _keystore(settings).new(name, _passphrase(settings, passphrase_file, confirm=True))
    except Mine2CellError as exc:
        raise _fail(exc) from None
    console.print(f"{entry.name}  {entry.address}  ({entry.path})", highlight=False)


@keys_app.command("import")
def keys_import(
    name: Annotated[str, typer.Argument(help="A name for the key.")],
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file",
            help="File holding the private key as hex (else a hidden prompt). Never pass a key "
            "on the command line: other users can read process listings.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    data_dir: DataDir = None,
    passphrase_file: PassphraseFile = None,
) -> None:
    """Import an existing private key into an encrypted key file."""
    settings = _settings(data_dir, None)
    try:
        if key_file is not None:
            raw = key_file.read_text()
        elif sys.stdin.isatty():
            raw = str(typer.prompt("Private key (hex)", hide_input=True))
        else:
            raise InvalidInput("private key", "none given: use --key-file (no terminal to ask)")
        key = parse_private_key(raw)
        entry = _keystore(settings).import_key(
            name, key, _passphrase(settings, passphrase_file, confirm=True)
        )
    except Mine2CellError as exc:
        raise _fail(exc) from None
    console.print(f"{entry.name}  {entry.address}  ({entry.path})", highlight=False)


@keys_app.command("list")
def keys_list(data_dir: DataDir = None) -> None:
    """List the key files: name and address."""
    settings = _settings(data_dir, None)
    try:
        entries = _keystore(settings).entries()
    except Mine2CellError as exc:
        raise _fail(exc) from None
    if not entries:
        console.print(f"no keys in {settings.keys_dir}; create one with `mine2cell keys new NAME`")
    for entry in entries:
        console.print(f"{entry.name}  {entry.address}", highlight=False)


@keys_app.command("address")
def keys_address(
    name: Annotated[str, typer.Argument(help="The key's name.")], data_dir: DataDir = None
) -> None:
    """Print the address of a key (no passphrase needed)."""
    settings = _settings(data_dir, None)
    try:
        console.print(_keystore(settings).entry(name).address, highlight=False)
    except Mine2CellError as exc:
        raise _fail(exc) from None


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)


def main() -> None:
    app()
