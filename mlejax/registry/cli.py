"""``mle-registry``: list, show, register, alias, tag, diff, lineage and gc, each with ``--json``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from ..format.errors import MLEError
from .registry import ModelRegistry, default_registry_uri

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mle-registry", description="Manage the mlejax model registry (SQLite + content-addressed blobs).")
    p.add_argument("--registry", default=None, help=f"a directory or sqlite:///path/registry.db (default: $MLEJAX_REGISTRY or {default_registry_uri()})")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help)
        c.add_argument("--json", action="store_true", help="print JSON")
        return c

    c = command("list", "models, or the versions of NAME")
    c.add_argument("name", nargs="?")
    c = command("show", "one version: NAME, NAME@ALIAS or NAME:VERSION")
    c.add_argument("ref")
    c = command("register", "add FILE.mle as the next version of NAME")
    c.add_argument("name")
    c.add_argument("file")
    c.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
    c.add_argument("--description")
    c.add_argument("--alias", help="point this alias at the new version")
    c.add_argument("--allow-breaking", action="store_true", help="accept an input schema or classes that differ from an aliased version's")
    c = command("alias", "point NAME@ALIAS at VERSION (or --delete it)")
    c.add_argument("name")
    c.add_argument("alias")
    c.add_argument("version", nargs="?", type=int)
    c.add_argument("--delete", action="store_true")
    c.add_argument("--allow-breaking", action="store_true")
    c = command("tag", "set KEY=VALUE on NAME:VERSION (or --delete KEY)")
    c.add_argument("name")
    c.add_argument("version", type=int)
    c.add_argument("tag", metavar="KEY=VALUE")
    c.add_argument("--delete", action="store_true")
    c = command("diff", "how version (or alias) B of NAME differs from A")
    c.add_argument("name")
    c.add_argument("a")
    c.add_argument("b")
    c = command("lineage", "the lineage chain of NAME, NAME@ALIAS or NAME:VERSION")
    c.add_argument("ref")
    command("gc", "delete blobs no version references")
    return p


def _split_tag(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not key or not sep:
        raise SystemExit(f"mle-registry: expected KEY=VALUE, got {text!r}")
    return key, value


def _run(reg: ModelRegistry, args: argparse.Namespace) -> Any:
    """Do the command; return what to print (JSON-able)."""
    if args.command == "list":
        return [v.to_dict() for v in reg.versions(args.name)] if args.name else reg.list_models()
    if args.command == "show":
        return reg.resolve(args.ref).to_dict()
    if args.command == "register":
        mv = reg.register(args.name, args.file, tags=dict(map(_split_tag, args.tag)), description=args.description,
                          allow_breaking=args.allow_breaking)
        return (reg.set_alias(args.name, args.alias, mv.version, allow_breaking=args.allow_breaking) if args.alias else mv).to_dict()
    if args.command == "alias":
        if args.delete:
            reg.delete_alias(args.name, args.alias)
            return {"name": args.name, "alias": args.alias, "deleted": True}
        if args.version is None:
            raise SystemExit("mle-registry alias: give a VERSION, or --delete")
        return reg.set_alias(args.name, args.alias, args.version, allow_breaking=args.allow_breaking).to_dict()
    if args.command == "tag":
        if args.delete:
            reg.delete_tag(args.name, args.version, args.tag)
        else:
            reg.set_tag(args.name, args.version, *_split_tag(args.tag))
        return reg.get(args.name, args.version).to_dict()
    if args.command == "diff":
        return reg.diff(args.name, args.a, args.b)
    if args.command == "lineage":
        mv = reg.resolve(args.ref)
        return reg.lineage(mv.name, mv.version)
    return reg.gc()


def _text(command: str, result: Any) -> str:
    """A short human-readable rendering of ``result``."""
    if command == "list" and result and "sha256" not in result[0]:
        return "\n".join(f"{m['name']}  latest {m['latest_version']}  ({m['versions']} versions)"
                         + "".join(f"  @{a}={v}" for a, v in m["aliases"].items()) for m in result) or "(no models)"
    if command == "list" or command == "lineage":
        return "\n".join(_version_line(v) for v in result)
    if command == "diff":
        lines = [f"{result['name']}: {result['a']} -> {result['b']}"]
        lines += [f"  {field}: {old} -> {new}" for field, (old, new) in result["changed"].items()]
        lines += [f"  BREAKING: {b}" for b in result["breaking"]] or ["  no breaking changes"]
        return "\n".join(lines)
    if isinstance(result, dict) and "sha256" in result:
        return "\n".join(f"{k:12} {v}" for k, v in result.items() if k not in ("info", "lineage")) + \
            f"\ninputs       {result['info']['inputs']}\nmethods      {result['info']['methods']}"
    return "\n".join(f"{k}: {v}" for k, v in result.items())


def _version_line(v: dict) -> str:
    if "version" not in v:
        return f"  <- {v.get('parent')} (not in this registry)"
    extras = "".join(f" @{a}" for a in v.get("aliases", [])) + "".join(f" {k}={t}" for k, t in v.get("tags", {}).items())
    return f"{v['name']}:{v['version']}  {v['sha256'][:12]}  {v.get('estimator') or v.get('info', {}).get('estimator')}{extras}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mle-registry``."""
    args = _parser().parse_args(argv)
    try:
        with ModelRegistry(args.registry) as reg:
            result = _run(reg, args)
    except (MLEError, ValueError) as e:
        print(f"mle-registry: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, default=str) if args.json else _text(args.command, result))
    return 0
