"""`mlstack data`: generate synthetic data, draft a contract, validate a table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlstack.cli.common import print_json
from mlstack.core import generator
from mlstack.core.contract import DataContract, infer_contract
from mlstack.core.errors import CheckFailed, UsageError

app = typer.Typer(help="Data: generate, infer a contract, validate.", no_args_is_help=True)


_LOAN = generator.loan_contract()
_GENERATE_HELP = (
    f"Generate a seeded loan-default table ({len(_LOAN.features)} features: "
    f"{len(_LOAN.numeric_features)} numeric, {len(_LOAN.categorical_features)} categorical; "
    "~13.5% positives) with an optional drift scenario."
)


@app.command("generate", help=_GENERATE_HELP)
def generate_cmd(
    out: Annotated[str, typer.Option("--out", help="Output path or s3:// URI (.csv or .parquet).")],
    rows: Annotated[int, typer.Option("--rows", min=1, help="Number of rows.")] = 50_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; same seed, same table.")] = 0,
    scenario: Annotated[
        str, typer.Option("--scenario", help=f"Drift scenario: {', '.join(generator.SCENARIOS)}.")
    ] = "none",
    strength: Annotated[
        float, typer.Option("--strength", min=0.0, help="Scale of the scenario's shift.")
    ] = 1.0,
    contract_out: Annotated[
        Path | None, typer.Option("--contract-out", help="Also write the generator's data contract here.")
    ] = None,
) -> None:
    """Generate a seeded loan-default table with an optional drift scenario (help: _GENERATE_HELP)."""
    if scenario not in generator.SCENARIOS:
        raise UsageError(f"unknown scenario {scenario!r}; choose one of {', '.join(generator.SCENARIOS)}")
    from mlstack.core import data as dataio  # pandas + pyarrow: imported by the command only

    frame = generator.generate(rows, seed=seed, scenario=scenario, strength=strength)
    dataio.save_table(frame, out)
    if contract_out:
        generator.loan_contract().save(contract_out)
    typer.echo(f"wrote {len(frame)} rows ({scenario}, seed {seed}) to {out}", err=True)


@app.command("infer-contract")
def infer_contract_cmd(
    data: Annotated[str, typer.Argument(help="CSV/Parquet path or s3:// URI.")],
    target: Annotated[str, typer.Option("--target", help="The label column (binary).")],
    id_column: Annotated[str | None, typer.Option("--id-column", help="A row-id column to exclude.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the YAML here instead of stdout.")] = None,
    name: Annotated[str, typer.Option("--name", help="Contract name.")] = "dataset",
) -> None:
    """Draft a data contract (types, ranges, categories, nullability) from a table; review it before use."""
    from mlstack.core import data as dataio

    frame = dataio.load_table(data)
    contract = infer_contract(frame, target=target, id_column=id_column, name=name)
    if out:
        contract.save(out)
        typer.echo(f"wrote contract with {len(contract.features)} features to {out}", err=True)
    else:
        typer.echo(contract.to_yaml())


@app.command("validate")
def validate_cmd(
    data: Annotated[str, typer.Argument(help="CSV/Parquet path or s3:// URI.")],
    contract: Annotated[Path, typer.Option("--contract", help="Data contract YAML.")],
    tolerance: Annotated[
        float, typer.Option("--tolerance", min=0.0, max=1.0, help="Allowed out-of-contract share per column.")
    ] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Validate a table against a contract; exit 1 when a rule fails beyond the tolerance."""
    from mlstack.core import data as dataio
    from mlstack.core.validation import validate

    report = validate(dataio.load_table(data), DataContract.load(contract), tolerance=tolerance)
    if as_json:
        print_json(report.to_dict())
    else:
        typer.echo(report.summary())
    if not report.passed:
        raise CheckFailed(f"validation failed: {report.summary()}")
