"""Access policy carried by a model, and this machine's trust settings.

**Access policy** (``metadata["policy"]``, written by
``export_model(policy=...)``) is checked by ``load_model`` before the graph is
built::

    {"not_before": "2027-01-01T00:00:00+00:00",   # ISO 8601, UTC; refuse earlier loads
     "expires": "2028-01-01T00:00:00+00:00",      # refuse loads at or after this time
     "allowed_hosts": ["scoring-*.example.com"],  # fnmatch patterns on socket.gethostname()
     "min_runtime_version": "0.1.0",              # mlejax versions allowed to run it
     "max_runtime_version": "0.9.99"}

Every key is optional. What it does and does not protect against:

- It stops honest mistakes: an outdated model used after its expiry date, a
  model meant for one cluster copied to another, a file run by a runtime too
  old or too new for it.
- It is **advisory unless the file is signed and the signature is verified**
  at load (``verify_signature=True``, or a local policy requiring it): without
  that, anyone can edit or delete the policy. With it, the policy cannot be
  changed without the signing key.
- It is **not** access control against a local attacker: whoever can run code
  on the machine can edit mlejax, change the clock or the hostname, or read
  the decrypted model from memory. Hostname and clock are whatever the machine
  reports. Keeping a model secret needs encryption and key management;
  enforcing who may run it needs the operating system or a server.

**Local trust settings** make signatures mandatory for every load on a machine:

- environment ``MLEJAX_REQUIRE_SIGNATURE=1`` (also ``true``/``yes``);
- environment ``MLEJAX_TRUSTED_KEYS``: public key files (PEM or raw 32 bytes),
  separated by ``os.pathsep``, used when ``load_model`` gets no ``public_key=``;
- a JSON config file, ``$MLEJAX_SECURITY_CONFIG`` or else
  ``$XDG_CONFIG_HOME/mlejax/security.json`` (``~/.config/mlejax/security.json``):
  ``{"require_signature": true, "trusted_keys": ["/etc/mlejax/publisher.pub"]}``.

A signature is required if either the environment or the config file says
so; then ``verify_signature=False`` is refused. Like the access policy, this
guards against mistakes and against tampered files, not against someone who
controls the process's environment or code.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import os
import re
import socket
from dataclasses import dataclass, field
from typing import Any

from .errors import MLESecurityError

__all__ = ["POLICY_KEYS", "make_policy", "check_policy", "TrustSettings", "trust_settings", "signature_keys"]

POLICY_KEYS = ("not_before", "expires", "allowed_hosts", "min_runtime_version", "max_runtime_version")
_VERSION = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?")
_TRUE = {"1", "true", "yes", "on"}


def _to_time(value: Any, what: str) -> dt.datetime:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value, dt.timezone.utc)
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"policy {what}: {value!r} is not an ISO 8601 time") from None
    if not isinstance(value, dt.datetime):
        raise TypeError(f"policy {what}: expected a datetime, ISO 8601 string or Unix time, got {type(value).__name__}")
    if value.tzinfo is None:
        raise ValueError(f"policy {what}: {value} has no time zone; give an aware datetime (e.g. in UTC)")
    return value.astimezone(dt.timezone.utc)


def _to_version(value: Any, what: str) -> tuple[int, int, int]:
    m = _VERSION.match(value) if isinstance(value, str) else None
    if m is None:
        raise ValueError(f"policy {what}: expected a version string like '0.2.0', got {value!r}")
    return tuple(int(g or 0) for g in m.groups())  # type: ignore[return-value]


def make_policy(
    not_before: Any = None,
    expires: Any = None,
    allowed_hosts: list[str] | None = None,
    min_runtime_version: str | None = None,
    max_runtime_version: str | None = None,
) -> dict:
    """A validated policy map for ``metadata["policy"]`` (times as ISO 8601 in UTC)."""
    policy: dict[str, Any] = {}
    for name, value in (("not_before", not_before), ("expires", expires)):
        if value is not None:
            policy[name] = _to_time(value, name).isoformat()
    if allowed_hosts is not None:
        if isinstance(allowed_hosts, str) or not all(isinstance(h, str) and h for h in allowed_hosts):
            raise TypeError("policy allowed_hosts: expected a list of hostname patterns")
        policy["allowed_hosts"] = list(allowed_hosts)
    for name, value in (("min_runtime_version", min_runtime_version), ("max_runtime_version", max_runtime_version)):
        if value is not None:
            _to_version(value, name)
            policy[name] = value
    return policy


def check_policy(
    policy: Any, *, runtime_version: str, now: dt.datetime | None = None, hostname: str | None = None
) -> None:
    """Raise :class:`MLESecurityError` unless ``policy`` (a model's ``metadata["policy"]``) allows this load.

    A malformed policy is refused too (fail closed). ``None`` means no policy.
    """
    if policy is None:
        return
    if not isinstance(policy, dict) or not set(policy) <= set(POLICY_KEYS):
        keys = sorted(policy) if isinstance(policy, dict) else type(policy).__name__
        raise MLESecurityError(f"the model's access policy is malformed ({keys}); known keys: {list(POLICY_KEYS)}")
    try:
        normalized = make_policy(**policy)
    except (TypeError, ValueError, OverflowError, OSError) as e:
        raise MLESecurityError(f"the model's access policy is malformed: {e}") from None
    now = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    if "not_before" in normalized and now < _to_time(normalized["not_before"], "not_before"):
        raise MLESecurityError(
            f"the model's policy forbids use before {normalized['not_before']} (now {now.isoformat()}); "
            "wait until then or get a model meant for now"
        )
    if "expires" in normalized and now >= _to_time(normalized["expires"], "expires"):
        raise MLESecurityError(f"the model expired at {normalized['expires']} (now {now.isoformat()}); get a current model")
    if "allowed_hosts" in normalized:
        host = (hostname if hostname is not None else socket.gethostname()).lower()
        if not any(fnmatch.fnmatchcase(host, p.lower()) for p in normalized["allowed_hosts"]):
            raise MLESecurityError(
                f"the model's policy does not allow host {host!r} (allowed: {normalized['allowed_hosts']}); "
                "run it on an allowed host"
            )
    running = _to_version(runtime_version, "runtime version")
    low, high = normalized.get("min_runtime_version"), normalized.get("max_runtime_version")
    if (low and running < _to_version(low, "min")) or (high and running > _to_version(high, "max")):
        raise MLESecurityError(
            f"the model's policy requires mlejax {low or 'any'} to {high or 'any'}, this is {runtime_version}; "
            "install a version in that range"
        )


@dataclass(frozen=True)
class TrustSettings:
    """This machine's signature requirements (see the module docstring)."""

    require_signature: bool = False
    trusted_keys: tuple[str, ...] = ()
    sources: tuple[str, ...] = field(default=())


def _config_path() -> str:
    explicit = os.environ.get("MLEJAX_SECURITY_CONFIG")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "mlejax", "security.json")


#: (what the settings were read from, the settings): reused while the config file and environment are unchanged
_last_settings: tuple[tuple, TrustSettings] | None = None


def trust_settings() -> TrustSettings:
    """Read the environment and the config file (a broken config file is an error, not ignored).

    The file is parsed again only when its path, size, modification or
    change time, or the ``MLEJAX_*`` variables change (one ``stat`` per load).
    """
    global _last_settings
    path = _config_path()
    try:
        st = os.stat(path)
        stamp: tuple | None = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    except OSError:
        stamp = None
    source = (path, stamp, os.environ.get("MLEJAX_REQUIRE_SIGNATURE"), os.environ.get("MLEJAX_TRUSTED_KEYS"))
    last = _last_settings
    if last is not None and last[0] == source:
        return last[1]
    settings = _read_trust_settings(path)
    _last_settings = (source, settings)
    return settings


def _read_trust_settings(path: str) -> TrustSettings:
    require, keys, sources = False, [], []
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as fh:
                config = json.load(fh)
        except (OSError, ValueError) as e:
            raise MLESecurityError(f"cannot read the mlejax security config {path}: {e}") from None
        if not isinstance(config, dict) or not set(config) <= {"require_signature", "trusted_keys"}:
            raise MLESecurityError(f"{path}: expected a JSON object with require_signature and/or trusted_keys")
        if not isinstance(config.get("require_signature", False), bool) or not isinstance(config.get("trusted_keys", []), list):
            raise MLESecurityError(f"{path}: require_signature must be a bool and trusted_keys a list of paths")
        require = config.get("require_signature", False)
        keys += [str(k) for k in config.get("trusted_keys", [])]
        sources.append(path)
    if os.environ.get("MLEJAX_REQUIRE_SIGNATURE", "").strip().lower() in _TRUE:
        require = True
        sources.append("MLEJAX_REQUIRE_SIGNATURE")
    env_keys = [k for k in os.environ.get("MLEJAX_TRUSTED_KEYS", "").split(os.pathsep) if k]
    if env_keys:
        keys += env_keys
        sources.append("MLEJAX_TRUSTED_KEYS")
    return TrustSettings(require, tuple(keys), tuple(sources))


def signature_keys(verify_signature: bool | None, public_key: Any) -> Any:
    """The keys ``load_model`` must verify against, or None to skip verification.

    ``verify_signature=None`` verifies when ``public_key`` is given or the local
    settings require it; ``True`` always verifies; ``False`` never does (refused
    when the local settings require signatures).
    """
    settings = trust_settings()
    where = " and ".join(settings.sources)
    if verify_signature is False:
        if settings.require_signature:
            raise MLESecurityError(f"signatures are required on this machine ({where}); verify_signature=False is refused")
        return None
    required = verify_signature is True or settings.require_signature
    if public_key is not None:
        return public_key
    if not required:
        return None
    if settings.trusted_keys:
        return list(settings.trusted_keys)
    reason = "verify_signature=True" if verify_signature else f"signatures are required on this machine ({where})"
    raise MLESecurityError(f"{reason}, but no public key: pass public_key= or list key files in MLEJAX_TRUSTED_KEYS")
