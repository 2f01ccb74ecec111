"""deploy/: the Dockerfile installs what the README documents, runs as non-root with a health check; the manifest probes real routes.

No docker here, so the image itself is not built; these are the claims that can be checked without it.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "deploy" / "Dockerfile").read_text()
_INSTALL = re.compile(r"pip install ((?:\"[^\"]*mlejax\[serve\][^\"]*\"|'[^']*mlejax\[serve\][^']*'|\S*mlejax\[serve\]\S*))")


def _instructions(text: str) -> list[tuple[str, str]]:
    """Dockerfile instructions (continuation lines joined, comments dropped) as (keyword, rest)."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined.splitlines() if line.strip()]


def test_dockerfile_install_line_is_the_readme_one():
    readme = (ROOT / "README.md").read_text()
    documented = {shlex.split(m)[0] for m in _INSTALL.findall(readme)}
    assert documented, 'README.md does not document pip install "mlejax[serve]"'
    runs = [rest for kw, rest in _instructions(DOCKERFILE) if kw == "RUN" and "pip install" in rest]
    assert len(runs) == 1, runs
    installed = shlex.split(runs[0])[2:]
    assert installed and set(installed) <= documented, (installed, documented)
    assert not re.search(r"sklearn|scikit|xgboost|lightgbm|catboost|torch|tensorflow|flax|\[ci\]|\[gbdt\]", runs[0])


def test_dockerfile_slim_non_root_with_healthcheck():
    instr = _instructions(DOCKERFILE)
    assert re.fullmatch(r"python:3\.\d+-slim", next(rest for kw, rest in instr if kw == "FROM"))
    user = [rest for kw, rest in instr if kw == "USER"]
    assert user and user[-1].strip() not in ("root", "0")
    healthcheck = next(rest for kw, rest in instr if kw == "HEALTHCHECK")
    assert "/v2/health/ready" in healthcheck
    entry = next(rest for kw, rest in instr if kw == "ENTRYPOINT")
    assert '"mle-serve"' in entry and "0.0.0.0" in entry


def test_kubernetes_manifest_probes_the_health_routes():
    yaml = pytest.importorskip("yaml")
    from mlejax.serve import create_app

    docs = list(yaml.safe_load_all((ROOT / "deploy" / "kubernetes.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"Deployment", "Service"}
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["resources"]["requests"] and container["resources"]["limits"]
    probes = {p: container[p]["httpGet"]["path"] for p in ("readinessProbe", "livenessProbe")}
    assert probes == {"readinessProbe": "/v2/health/ready", "livenessProbe": "/v2/health/live"}
    routes = {r.path for r in create_app({}).routes}
    assert set(probes.values()) <= routes
    assert kinds["Service"]["spec"]["selector"] == kinds["Deployment"]["spec"]["selector"]["matchLabels"]
    assert pod["terminationGracePeriodSeconds"] > 30  # longer than mle-serve's graceful shutdown
