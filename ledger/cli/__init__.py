"""The ``ledger`` command line. Errors are one line on stderr and a meaningful exit code:

0 success; 1 a check failed (a proof or chain that does not verify); 2 usage error;
3 infrastructure unavailable (Kafka, PostgreSQL, Java); 4 bad input (file, key, value).
"""

from __future__ import annotations

import logging
import sys

import click

from ledger.errors import (
    ChainError,
    ConfigError,
    DecodeError,
    InfraError,
    KeyFileError,
    LedgerError,
    ProofError,
    SignatureError,
    SigningError,
)

EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_INFRA = 3
EXIT_BAD_INPUT = 4


def exit_code(error: LedgerError) -> int:
    if isinstance(error, ProofError | ChainError | SignatureError):
        return EXIT_CHECK_FAILED
    if isinstance(error, InfraError):
        return EXIT_INFRA
    if isinstance(error, ConfigError | KeyFileError | DecodeError | SigningError):
        return EXIT_BAD_INPUT
    return EXIT_CHECK_FAILED


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """An event-sourced, verifiable ledger on Kafka."""


def main() -> None:
    from ledger.cli import (  # noqa: F401  (registers the commands)
        bench,
        chain,
        consistency,
        db,
        envelope_file,
        keys,
        query,
        stack,
        submit,
        submit_admin,
        submit_money,
    )

    # aiokafka logs connection failures itself; every command reports them once, in its line.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("ledger: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"ledger: {exc.format_message()}", err=True)
        sys.exit(EXIT_USAGE)
    except LedgerError as exc:
        click.echo(f"ledger: {exc}", err=True)
        sys.exit(exit_code(exc))
    except KeyboardInterrupt:
        click.echo("ledger: interrupted", err=True)
        sys.exit(130)
