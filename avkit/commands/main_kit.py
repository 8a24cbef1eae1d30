"""`avkit kit`: the plugin test kit (generate-test-data, scanning, waiting, server, or the menu)."""

from avkit import paths
from avkit.check import kit_corpus as corpus
from avkit.check.kit import menu, run_test


def _common(p):
    p.add_argument(
        "--plugin",
        default=str(paths.dist_dir("zig") / "avir_sample.so"),
        help="the avir_*.so to test (default: dist/i386/avir_sample.so)",
    )
    p.add_argument("--avhost", help="avhost to use (default: beside the plugin)")
    p.add_argument(
        "--data",
        help="corpus folder (generated there when missing; default: "
        "FOLDER/build/kit-data for a plugin in FOLDER/dist/, else "
        "a temporary folder)",
    )
    p.add_argument(
        "--engine",
        choices=corpus.ENGINES,
        help="expectations to use: default (a full antivirus engine), sample (EICAR "
        "in plain files only), clam, icap; by default chosen from the plugin's "
        "name",
    )
    p.add_argument(
        "-o",
        dest="option",
        action="append",
        metavar="NAME=VALUE",
        help="plugin option (repeatable)",
    )
    servers = p.add_mutually_exclusive_group()  # one server for the plugin under test
    servers.add_argument(
        "--with-clamd",
        action="store_true",
        help="start a private clamd for the run and point the plugin at it",
    )
    servers.add_argument(
        "--with-cicap",
        action="store_true",
        help="start a private c-icap with virus_scan (over a private clamd) "
        "for the run and point the plugin (avir_icap) at it",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=5.0,
        help="waiting: seconds idle between the two scans (default 5)",
    )
    p.add_argument(
        "--scan-timeout",
        type=float,
        default=60.0,
        help="a scan not answered within this many seconds is HUNG (default 60); "
        "once the plugin has hung, later scans get 5 s",
    )
    p.add_argument(
        "--samples",
        metavar="MANIFEST",
        help="your engine's own samples and expectations (JSON, or TOML): the kit "
        "builds its hostile corpus around each (docs/author.md)",
    )
    p.add_argument("--junit", metavar="FILE", help="write a JUnit XML report")
    p.add_argument("--seed", type=int, default=corpus.DEFAULT_SEED)
    p.add_argument("--stream-limit", type=int, default=corpus.DEFAULT_STREAM_LIMIT)


def register(subparsers):
    p = subparsers.add_parser("kit", help="the plugin test kit (no test named: the menu)")
    _common(p)
    sub = p.add_subparsers(dest="kit_test", metavar="TEST")
    g = sub.add_parser("generate-test-data", help="write the corpus and its manifest")
    g.add_argument("dir")
    _common(g)
    for name, doc in (
        ("scanning", "scan the corpus once and compare with the manifest"),
        ("waiting", "scan, stay idle, scan again: nothing may change"),
        ("server", "drive `avhost serve` like the product"),
    ):
        _common(sub.add_parser(name, help=doc))
    p.set_defaults(func=run)


def run(args) -> int:
    if not args.kit_test:
        return menu(args)
    return run_test(args.kit_test, args)
