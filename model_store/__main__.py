"""Model-store CLI: list, show, compare, alias, verify and delete versions, and export model cards.

    python -m model_store list                       # versions with metrics and aliases
    python -m model_store show latest                # one version's metadata (JSON)
    python -m model_store compare 1 2 production     # metrics and the configs that differ, side by side [--all]
    python -m model_store card 3 -o card.html        # one self-contained HTML model card (stdout without -o)
    python -m model_store alias set production 3     # point an alias at a version
    python -m model_store alias rm production
    python -m model_store verify [VERSION|--all]     # check every file's sha256
    python -m model_store delete 2 [--force]         # refused while an alias points to it, unless forced
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .card import render_card
from .compare import compare_versions
from .errors import IntegrityError, StoreError
from .registry import DEFAULT_MODEL_NAME, LATEST, ROOT_ENV_VAR, ModelStore


def _fmt(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else ("-" if value is None else str(value))


def cmd_list(store: ModelStore, args: argparse.Namespace) -> int:
    versions = store.versions(args.name)
    if not versions:
        print(f"no versions of {args.name!r} in {store.root}")
        return 0
    by_version: dict[int, list[str]] = {}
    for alias, version in store.aliases(args.name).items():
        by_version.setdefault(version, []).append(alias)
    rows = [("version", "created_at", "-ELBO", "IW-NLL", "k", "epochs", "aliases", "description")]
    for v in versions:
        try:
            meta = store.metadata(args.name, v)
        except IntegrityError:
            rows.append((str(v), "(unreadable metadata)", "", "", "", "", "", ""))
            continue
        m = meta.get("metrics", {})
        rows.append((str(v), meta.get("created_at", "-"), _fmt(m.get("test_neg_elbo")), _fmt(m.get("test_iw_nll")),
                     _fmt(m.get("iw_k")), _fmt(m.get("epochs_total")), ",".join(sorted(by_version.get(v, []))),
                     (meta.get("description") or "")[:40]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return 0


def cmd_show(store: ModelStore, args: argparse.Namespace) -> int:
    print(json.dumps(store.metadata(args.name, args.version), indent=2, sort_keys=True))
    return 0


def cmd_compare(store: ModelStore, args: argparse.Namespace) -> int:
    print(compare_versions(store, args.name, args.versions, all_keys=args.all).format())
    return 0


def cmd_card(store: ModelStore, args: argparse.Namespace) -> int:
    html = render_card(store, args.name, args.version)
    if args.output:
        Path(args.output).write_text(html, encoding="utf-8")
        print(f"wrote the model card of {args.name} {args.version} to {args.output}")
    else:
        sys.stdout.write(html)
    return 0


def cmd_alias(store: ModelStore, args: argparse.Namespace) -> int:
    if args.alias_cmd == "set":
        version = store.set_alias(args.name, args.alias, args.version)
        print(f"{args.name}:{args.alias} -> version {version}")
    elif args.alias_cmd == "rm":
        store.remove_alias(args.name, args.alias)
        print(f"removed alias {args.alias!r} of {args.name}")
    else:
        for alias, version in sorted(store.aliases(args.name).items()):
            print(f"{alias}\t{version}")
    return 0


def cmd_verify(store: ModelStore, args: argparse.Namespace) -> int:
    targets = store.versions(args.name) if args.all else [store.resolve(args.name, args.version)]
    failed = 0
    for version in targets:
        try:
            meta = store.verify(args.name, version)
            print(f"ok      {args.name} v{version} ({len(meta['files'])} files)")
        except IntegrityError as exc:
            failed += 1
            print(f"FAILED  {args.name} v{version}: {exc}")
    return 1 if failed else 0


def cmd_delete(store: ModelStore, args: argparse.Namespace) -> int:
    version = store.delete(args.name, args.version, force=args.force)
    print(f"deleted {args.name} v{version}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m model_store", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=None, help=f"store root (default: ${ROOT_ENV_VAR} or the repository's store)")
    parser.add_argument("--name", default=DEFAULT_MODEL_NAME, help="model name (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="versions with metrics and aliases").set_defaults(func=cmd_list)
    show = sub.add_parser("show", help="a version's metadata as JSON")
    show.add_argument("version", nargs="?", default=LATEST, help="version number or alias (default: latest)")
    show.set_defaults(func=cmd_show)
    compare = sub.add_parser("compare", help="metrics and differing configs of versions, side by side")
    compare.add_argument("versions", nargs="+", help="version numbers or aliases")
    compare.add_argument("--all", action="store_true", help="show every config key, not only those that differ")
    compare.set_defaults(func=cmd_compare)
    card = sub.add_parser("card", help="export a version's record as one self-contained HTML model card")
    card.add_argument("version", nargs="?", default=LATEST, help="version number or alias (default: latest)")
    card.add_argument("-o", "--output", default=None, help="write to this file (default: stdout)")
    card.set_defaults(func=cmd_card)
    alias = sub.add_parser("alias", help="list, set or remove aliases")
    alias_sub = alias.add_subparsers(dest="alias_cmd")
    alias_set = alias_sub.add_parser("set", help="point ALIAS at VERSION")
    alias_set.add_argument("alias")
    alias_set.add_argument("version")
    alias_rm = alias_sub.add_parser("rm", help="remove ALIAS")
    alias_rm.add_argument("alias")
    alias.set_defaults(func=cmd_alias)
    verify = sub.add_parser("verify", help="check every file's sha256 (exit 1 on a mismatch)")
    verify.add_argument("version", nargs="?", default=LATEST)
    verify.add_argument("--all", action="store_true", help="verify every version")
    verify.set_defaults(func=cmd_verify)
    delete = sub.add_parser("delete", help="delete a version")
    delete.add_argument("version")
    delete.add_argument("--force", action="store_true", help="delete even if aliases point to it (removes them)")
    delete.set_defaults(func=cmd_delete)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(ModelStore(args.root), args)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
