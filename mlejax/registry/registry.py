"""``ModelRegistry``: named, numbered, aliased versions of ``.mle`` files, embedded (SQLite + blobs)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from .. import lineage as _lineage
from ..format import read_mle
from ..format.errors import MLESecurityError
from .db import connect, transaction
from .errors import IncompatibleSchemaError, RegistryError
from .schema import breaking_changes, describe, diff
from .store import BlobStore, sha256_file

__all__ = ["ModelRegistry", "ModelVersion", "Listing", "default_registry_uri", "parse_uri", "load_uri"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]*$")
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
URI_SCHEME = "registry://"


def default_registry_uri() -> str:
    """``$MLEJAX_REGISTRY``, else ``$XDG_DATA_HOME/mlejax/registry`` (``~/.local/share/mlejax/registry``)."""
    env = os.environ.get("MLEJAX_REGISTRY")
    if env:
        return env
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "mlejax", "registry")


def _locate(uri: str | os.PathLike | None) -> tuple[Path, Path]:
    """(database file, blob root) for a registry URI: a directory, or ``sqlite:///path/registry.db``."""
    uri = os.fspath(uri) if uri is not None else default_registry_uri()
    if uri.startswith("sqlite:///"):  # as MLflow: sqlite:///relative.db, sqlite:////absolute.db
        db = Path(uri[len("sqlite:///"):])
        return db, db.parent / "blobs"
    if "://" in uri:
        raise ValueError(f"registry uri {uri!r}: expected a directory or sqlite:///path/registry.db")
    return Path(uri) / "registry.db", Path(uri) / "blobs"


def _check(pattern: re.Pattern, value: str, what: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(f"{what} {value!r}: expected letters, digits and _ . - (pattern {pattern.pattern})")
    return value


@dataclass(frozen=True)
class ModelVersion:
    """One registered version. ``info`` is the file's summary (:func:`mlejax.registry.schema.describe`)."""

    name: str
    version: int
    sha256: str
    size: int
    created_at: str
    description: str | None
    info: dict[str, Any]
    lineage: dict[str, Any]
    path: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)

    @property
    def uri(self) -> str:
        """``registry://NAME:VERSION``, accepted by :func:`mlejax.load_model`."""
        return f"{URI_SCHEME}{self.name}:{self.version}"

    framework = property(lambda self: self.info.get("framework"), doc="Source framework (``sklearn``, ``xgboost``, …).")
    framework_version = property(lambda self: self.info.get("framework_version"), doc="Its version at export.")
    estimator = property(lambda self: self.info.get("estimator"), doc="Source estimator class.")
    inputs = property(lambda self: self.info.get("inputs"), doc="Input schema: name, dtype, shape, feature names.")
    methods = property(lambda self: self.info.get("methods"), doc="Methods the model has.")
    classes = property(lambda self: self.info.get("classes"), doc="Class labels, or None.")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "uri": self.uri}

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from ..display import mimebundle, version_html

        return mimebundle(self, version_html, include, exclude)


class Listing(list):
    """What :meth:`ModelRegistry.list_models`, ``versions`` and ``search`` return: a plain ``list`` that Jupyter shows as a table."""

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from ..display import listing_html, mimebundle

        return mimebundle(self, listing_html, include, exclude)


def parse_uri(uri: str) -> tuple[str, int | None, str | None]:
    """``registry://NAME``, ``registry://NAME@ALIAS`` or ``registry://NAME:VERSION`` → (name, version, alias)."""
    if not uri.startswith(URI_SCHEME):
        raise ValueError(f"{uri!r}: expected registry://NAME, registry://NAME@ALIAS or registry://NAME:VERSION")
    return parse_ref(uri[len(URI_SCHEME):])


def parse_ref(ref: str) -> tuple[str, int | None, str | None]:
    """``NAME``, ``NAME@ALIAS`` or ``NAME:VERSION`` → (name, version, alias)."""
    if "@" in ref:
        name, alias = ref.rsplit("@", 1)
        return name, None, alias
    name, sep, version = ref.rpartition(":")
    if sep and version.isdigit():
        return name, int(version), None
    return ref, None, None


class ModelRegistry:
    """Named models with auto-numbered versions, aliases, tags, lineage and schema checks.

    Embedded: one SQLite database (WAL mode) and a content-addressed blob
    store beside it; no server. ``uri`` is a directory or
    ``sqlite:///path/registry.db`` (blobs go beside the database); default
    :func:`default_registry_uri`. Several processes may use one registry at
    once. With ``require_signature=True`` every file registered or loaded
    must carry a valid signature by one of ``trusted_keys`` (or, without
    them, of this machine's trusted keys, see :mod:`mlejax.format.policy`).
    """

    def __init__(self, uri: str | os.PathLike | None = None, *, require_signature: bool = False, trusted_keys: Any = None) -> None:
        self.db_path, blob_root = _locate(uri)
        self.db_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.blobs = BlobStore(blob_root)
        self.require_signature = require_signature
        self.trusted_keys = trusted_keys
        self._lock = threading.RLock()  # one connection, shared by this object's threads
        self._conn = connect(self.db_path)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "ModelRegistry":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ModelRegistry({os.fspath(self.db_path)!r})"

    # --- writing -----------------------------------------------------------------------
    def register(
        self,
        name: str,
        model_or_path: Any,
        *,
        tags: Mapping[str, str] | None = None,
        description: str | None = None,
        lineage: Mapping[str, Any] | None = None,
        sample_input: Any = None,
        allow_breaking: bool = False,
        **export_options: Any,
    ) -> ModelVersion:
        """Add the next version of ``name``: a ``.mle`` path, or a trained model (exported here).

        ``sample_input`` and ``export_options`` (``training_data=``,
        ``parent=``, …) go to :func:`mlejax.export_model` when a model is
        given. ``lineage`` is merged over what the file records. If the input
        schema or classes differ from a version an alias of ``name`` points
        to, :class:`IncompatibleSchemaError` names the differences unless
        ``allow_breaking=True``.
        """
        _check(_NAME, name, "model name")
        if isinstance(model_or_path, (str, os.PathLike)):
            return self._register_file(name, model_or_path, tags, description, lineage, allow_breaking)
        from ..export import export_model

        tmp = self.blobs.tmp / f"{secrets.token_hex(8)}.mle"
        try:
            export_model(model_or_path, tmp, sample_input=sample_input, **export_options)
            return self._register_file(name, tmp, tags, description, lineage, allow_breaking)
        finally:
            tmp.unlink(missing_ok=True)

    def _register_file(self, name: str, path: Any, tags: Any, description: Any, lineage: Any, allow_breaking: bool) -> ModelVersion:
        with read_mle(os.fspath(path), public_key=self._keys()) as mfile:
            info = describe(mfile)
            record = {**_lineage.from_metadata(mfile.metadata), **(lineage or {})}
        sha, size = self.blobs.put(path)
        with self._lock, transaction(self._conn) as db:
            if not self.blobs.exists(sha):  # a concurrent gc removed it before we held the lock
                self.blobs.put(path)
            if not allow_breaking:
                for alias, version, old in self._aliased_infos(name):
                    changes = breaking_changes(old, info)
                    if changes:
                        raise IncompatibleSchemaError(
                            f"{name}: the new version is incompatible with version {version} (alias {alias!r}): "
                            + "; ".join(changes) + ". Keep the inputs and classes, or pass allow_breaking=True"
                        )
            db.execute("INSERT OR IGNORE INTO models (name, created_at) VALUES (?, ?)", (name, time.time()))
            db.execute("UPDATE models SET last_version = last_version + 1 WHERE name = ?", (name,))
            version = db.execute("SELECT last_version FROM models WHERE name = ?", (name,)).fetchone()[0]
            db.execute(
                "INSERT INTO versions (name, version, sha256, size, created_at, description, framework, info, lineage) VALUES (?,?,?,?,?,?,?,?,?)",
                (name, version, sha, size, time.time(), description, info.get("framework"), json.dumps(info), json.dumps(record, default=str)),
            )
            db.executemany("INSERT INTO tags (name, version, key, value) VALUES (?,?,?,?)",
                           [(name, version, str(k), str(v)) for k, v in (tags or {}).items()])
        return self.get(name, version)

    def set_alias(self, name: str, alias: str, version: int, *, allow_breaking: bool = False) -> ModelVersion:
        """Point ``NAME@alias`` at ``version``; moving it onto an incompatible version needs ``allow_breaking``."""
        _check(_ALIAS, alias, "alias")
        with self._lock, transaction(self._conn) as db:
            new = self._row(name, version)
            old = db.execute("SELECT version FROM aliases WHERE name = ? AND alias = ?", (name, alias)).fetchone()
            if old is not None and not allow_breaking:
                changes = breaking_changes(json.loads(self._row(name, old[0])["info"]), json.loads(new["info"]))
                if changes:
                    raise IncompatibleSchemaError(
                        f"{name}@{alias}: version {version} is incompatible with version {old[0]} it points to now: "
                        + "; ".join(changes) + ". Pass allow_breaking=True to move it anyway"
                    )
            db.execute("INSERT OR REPLACE INTO aliases (name, alias, version) VALUES (?,?,?)", (name, alias, version))
        return self.get(name, version)

    def delete_alias(self, name: str, alias: str) -> None:
        with self._lock, transaction(self._conn) as db:
            if db.execute("DELETE FROM aliases WHERE name = ? AND alias = ?", (name, alias)).rowcount == 0:
                raise RegistryError(f"{name} has no alias {alias!r}; it has {sorted(self._aliases(name))}")

    def set_tag(self, name: str, version: int, key: str, value: str) -> None:
        with self._lock, transaction(self._conn) as db:
            self._row(name, version)
            db.execute("INSERT OR REPLACE INTO tags (name, version, key, value) VALUES (?,?,?,?)", (name, version, key, str(value)))

    def delete_tag(self, name: str, version: int, key: str) -> None:
        with self._lock, transaction(self._conn) as db:
            if db.execute("DELETE FROM tags WHERE name = ? AND version = ? AND key = ?", (name, version, key)).rowcount == 0:
                raise RegistryError(f"{name}:{version} has no tag {key!r}")

    def delete_version(self, name: str, version: int) -> None:
        """Remove a version (its blob stays until :meth:`gc`); refused while an alias points to it."""
        with self._lock, transaction(self._conn) as db:
            self._row(name, version)
            aliases = [r[0] for r in db.execute("SELECT alias FROM aliases WHERE name = ? AND version = ?", (name, version))]
            if aliases:
                raise RegistryError(f"{name}:{version} is the target of alias(es) {aliases}; move or delete them first")
            db.execute("DELETE FROM versions WHERE name = ? AND version = ?", (name, version))

    def gc(self, *, tmp_age_s: float = 3600.0) -> dict[str, int]:
        """Delete blobs no version references, and temporary files older than ``tmp_age_s`` (left by killed writers)."""
        with self._lock, transaction(self._conn) as db:  # the write lock keeps a registration from committing mid-sweep
            used = {r[0] for r in db.execute("SELECT DISTINCT sha256 FROM versions")}
            removed = freed = 0
            for sha in list(self.blobs.hashes()):
                if sha not in used:
                    freed += self.blobs.delete(sha)
                    removed += 1
        return {"blobs_removed": removed, "bytes_freed": freed, "tmp_removed": self.blobs.remove_stale_tmp(tmp_age_s)}

    # --- reading -----------------------------------------------------------------------
    def get(self, name: str, version: int | None = None, *, alias: str | None = None) -> ModelVersion:
        """The latest version of ``name``, or the given ``version`` or ``alias``."""
        with self._lock:
            if alias is not None:
                row = self._conn.execute("SELECT version FROM aliases WHERE name = ? AND alias = ?", (name, alias)).fetchone()
                if row is None:
                    self._row(name, None)  # unknown name: say so
                    raise RegistryError(f"{name} has no alias {alias!r}; it has {sorted(self._aliases(name))}")
                version = row[0]
            return self._version(self._row(name, version))

    def resolve(self, ref: str) -> ModelVersion:
        """``NAME``, ``NAME@ALIAS``, ``NAME:VERSION`` or a ``registry://`` URI → the version."""
        name, version, alias = parse_uri(ref) if ref.startswith(URI_SCHEME) else parse_ref(ref)
        return self.get(name, version, alias=alias)

    def load(self, name: str, version: int | None = None, *, alias: str | None = None, cache: Any = None, **load_options: Any) -> Any:
        """The version as a :class:`mlejax.Model`; its blob's sha256 is checked first (``MLESecurityError`` if it changed).

        ``load_options`` go to :func:`mlejax.load_model`; ``cache`` as there.
        """
        mv = self.get(name, version, alias=alias)
        if self.require_signature:
            load_options.setdefault("verify_signature", True)
            if self.trusted_keys is not None:
                load_options.setdefault("public_key", self.trusted_keys)
        if not os.path.isfile(mv.path):
            raise RegistryError(f"{mv.uri}: its blob {mv.path} is missing; the registry directory was damaged. Re-register the model")
        if cache not in (None, False):
            from ..model_cache import resolve_cache

            return resolve_cache(cache).load(mv.path, expected_sha256=mv.sha256, **load_options)
        check_blob(mv.path, mv.sha256, mv.uri, sha256_file(mv.path))
        from ..model import load_model

        return load_model(mv.path, **load_options)

    def list_models(self) -> Listing:
        """Every model name with its latest version, version count and aliases."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT m.name, m.created_at, MAX(v.version), COUNT(v.version) FROM models m "
                "LEFT JOIN versions v ON v.name = m.name GROUP BY m.name ORDER BY m.name"
            ).fetchall()
            return Listing({"name": r[0], "created_at": _iso(r[1]), "latest_version": r[2], "versions": r[3], "aliases": self._aliases(r[0])} for r in rows)

    def versions(self, name: str) -> Listing:
        """Every version of ``name``, oldest first."""
        with self._lock:
            self._model_exists(name)
            return Listing(self._version(r) for r in self._conn.execute("SELECT * FROM versions WHERE name = ? ORDER BY version", (name,)))

    def search(self, name_like: str | None = None, tags: Mapping[str, str] | None = None, framework: str | None = None) -> Listing:
        """Versions whose name matches the SQL ``LIKE`` pattern ``name_like``, carrying all ``tags``, from ``framework``."""
        where, args = ["1"], []
        if name_like is not None:
            where.append("v.name LIKE ?")
            args.append(name_like)
        if framework is not None:
            where.append("v.framework = ?")
            args.append(framework)
        for key, value in (tags or {}).items():
            where.append("EXISTS (SELECT 1 FROM tags t WHERE t.name = v.name AND t.version = v.version AND t.key = ? AND t.value = ?)")
            args += [key, str(value)]
        with self._lock:
            rows = self._conn.execute(f"SELECT * FROM versions v WHERE {' AND '.join(where)} ORDER BY v.name, v.version", args).fetchall()
            return Listing(self._version(r) for r in rows)

    def diff(self, name: str, a: int | str, b: int | str) -> dict[str, Any]:
        """How version (or alias) ``b`` differs from ``a``: inputs, outputs, classes, methods, ops, size, metadata."""
        old, new = (self._ref(name, r) for r in (a, b))
        result = diff({**old.info, "size": old.size}, {**new.info, "size": new.size})
        return {"name": name, "a": old.version, "b": new.version, **result}

    def lineage(self, name: str, version: int | None = None, *, alias: str | None = None) -> list[dict[str, Any]]:
        """The lineage chain: this version's record, then its parent's, and so on (parents outside the registry end it)."""
        chain, seen = [], set()
        mv: ModelVersion | None = self.get(name, version, alias=alias)
        while mv is not None and mv.sha256 not in seen:
            seen.add(mv.sha256)
            chain.append({"name": mv.name, "version": mv.version, "sha256": mv.sha256, **mv.lineage})
            parent = mv.lineage.get("parent")
            if not parent:
                break
            mv = self._find_parent(parent)
            if mv is None:
                chain.append({"parent": parent, "registered": False})
        return chain

    def verify(self) -> list[str]:
        """Check every version's blob exists and has its recorded sha256; return the problems (empty: consistent)."""
        problems = []
        with self._lock:
            rows = self._conn.execute("SELECT name, version, sha256 FROM versions ORDER BY name, version").fetchall()
        for name, version, sha in rows:
            path = self.blobs.path(sha)
            if not path.is_file():
                problems.append(f"{name}:{version}: blob {path} is missing")
            elif sha256_file(path) != sha:
                problems.append(f"{name}:{version}: blob {path} does not match its sha256")
        return problems

    # --- internals ---------------------------------------------------------------------
    def _keys(self) -> Any:
        if not self.require_signature:
            return None
        from ..format.policy import signature_keys

        return signature_keys(True, self.trusted_keys)

    def _model_exists(self, name: str) -> None:
        if self._conn.execute("SELECT 1 FROM models WHERE name = ?", (name,)).fetchone() is None:
            known = [r[0] for r in self._conn.execute("SELECT name FROM models ORDER BY name LIMIT 11")]
            raise RegistryError(f"no model named {name!r} in {self.db_path}; it has {known[:10]}{' ...' if len(known) > 10 else ''}")

    def _row(self, name: str, version: int | None) -> Any:
        if version is None:
            row = self._conn.execute("SELECT * FROM versions WHERE name = ? ORDER BY version DESC LIMIT 1", (name,)).fetchone()
        else:
            row = self._conn.execute("SELECT * FROM versions WHERE name = ? AND version = ?", (name, int(version))).fetchone()
        if row is None:
            self._model_exists(name)
            have = [r[0] for r in self._conn.execute("SELECT version FROM versions WHERE name = ? ORDER BY version", (name,))]
            raise RegistryError(f"{name} has no version {version}; its versions are {have}" if version is not None else f"{name} has no versions left")
        return row

    def _ref(self, name: str, ref: int | str) -> ModelVersion:
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            return self.get(name, int(ref))
        return self.get(name, alias=str(ref).lstrip("@"))

    def _aliases(self, name: str) -> dict[str, int]:
        return {r[0]: r[1] for r in self._conn.execute("SELECT alias, version FROM aliases WHERE name = ? ORDER BY alias", (name,))}

    def _aliased_infos(self, name: str) -> Iterable[tuple[str, int, dict]]:
        rows = self._conn.execute(
            "SELECT a.alias, a.version, v.info FROM aliases a JOIN versions v ON v.name = a.name AND v.version = a.version WHERE a.name = ?", (name,)
        )
        return [(r[0], r[1], json.loads(r[2])) for r in rows]

    def _version(self, row: Any) -> ModelVersion:
        name, version = row["name"], row["version"]
        tags = {r[0]: r[1] for r in self._conn.execute("SELECT key, value FROM tags WHERE name = ? AND version = ? ORDER BY key", (name, version))}
        aliases = [r[0] for r in self._conn.execute("SELECT alias FROM aliases WHERE name = ? AND version = ? ORDER BY alias", (name, version))]
        return ModelVersion(
            name=name, version=version, sha256=row["sha256"], size=row["size"], created_at=_iso(row["created_at"]),
            description=row["description"], info=json.loads(row["info"]), lineage=json.loads(row["lineage"]),
            path=os.fspath(self.blobs.path(row["sha256"])), tags=tags, aliases=aliases,
        )

    def _find_parent(self, parent: Mapping[str, Any]) -> ModelVersion | None:
        try:
            if "uri" in parent:
                return self.resolve(parent["uri"])
            if "name" in parent and "version" in parent:
                return self.get(parent["name"], parent["version"])
        except RegistryError:
            return None
        with self._lock:
            row = self._conn.execute("SELECT * FROM versions WHERE sha256 = ? ORDER BY created_at LIMIT 1", (parent.get("sha256"),)).fetchone()
            return None if row is None else self._version(row)


def _iso(timestamp: float) -> str:
    return _dt.datetime.fromtimestamp(timestamp, _dt.timezone.utc).isoformat(timespec="milliseconds")


def check_blob(path: Any, expected: str, what: str, found: str) -> None:
    """Raise :class:`MLESecurityError` when a blob's content hash is not the one recorded."""
    if found != expected:
        raise MLESecurityError(
            f"{what}: the file {path} has sha256 {found}, but the registry recorded {expected}: it was modified on disk. "
            "Do not use it; delete the version and register it again from a trusted copy"
        )


_DEFAULT: dict[str, ModelRegistry] = {}


def load_uri(uri: str, **load_options: Any) -> Any:
    """Load ``registry://NAME[@ALIAS|:VERSION]`` from the default registry (:func:`default_registry_uri`)."""
    name, version, alias = parse_uri(uri)
    where = default_registry_uri()
    registry = _DEFAULT.get(where)
    if registry is None:
        registry = _DEFAULT[where] = ModelRegistry(where)
    return registry.load(name, version, alias=alias, **load_options)
