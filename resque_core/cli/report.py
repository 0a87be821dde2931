"""The ``report`` command: export a stored run as a shareable report, or import one.

    python -m resque_core report --run ID|latest --out FILE [--format html|pdf|md|json|csv]
        [--cache-dir DIR]
    python -m resque_core report --import FILE [--cache-dir DIR]

``--format`` defaults to the extension of ``--out``. Prints one line naming the file written
(or the run id imported). A PDF without charts (no Chromium to print them) says why on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._options import add_cache_option
from ._registry import command

__all__: list[str] = []


def _options(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", help="stored run id, or latest (the newest stored run)")
    which.add_argument(
        "--import", dest="import_file", metavar="FILE", help="store a run exported as JSON"
    )
    p.add_argument("--format", help="html, pdf, md, json or csv (default: from --out's extension)")
    p.add_argument("--out", help="file to write (with --run)")
    add_cache_option(p)


@command("report", "export a stored run as HTML, PDF, Markdown, JSON or CSV; import one", _options)
def _report(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..report.export import FORMATS, export_run, import_run

    if args.import_file is not None:
        if args.out or args.format:
            raise ConfigError("--out and --format go with --run, not with --import")
        run_id = import_run(Path(args.import_file), cache_dir=args.cache_dir)
        print(f"imported run {run_id}")
        return 0
    if not args.out:
        raise ConfigError("--out FILE is required with --run")
    fmt = args.format or Path(args.out).suffix.lstrip(".").lower()
    if not fmt:
        raise ConfigError(
            f"give --format ({', '.join(FORMATS)}) or an --out file with one of those extensions"
        )
    exported = export_run(args.run, fmt, args.out, cache_dir=args.cache_dir)
    if exported.note:
        print(f"note: {exported.note}", file=sys.stderr)
    print(f"wrote {exported.path} ({fmt}, {exported.bytes:,} bytes)")
    return 0
