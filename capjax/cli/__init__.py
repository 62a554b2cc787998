"""The command line: thin argument parsing over :mod:`capjax.workflows`."""

from capjax.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
