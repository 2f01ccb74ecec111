"""The built wheel maps format/, lowering/ and exporters/ under mlejax and nothing else lands at the top."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    src = tmp_path_factory.mktemp("src")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
        check=True, capture_output=True,
    )
    (whl,) = out.glob("mlejax-*.whl")
    return whl


def test_wheel_file_list(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"mlejax", next(t for t in tops if t.endswith(".dist-info"))}, tops
    for must in (
        "mlejax/__init__.py",
        "mlejax/model.py",
        "mlejax/cli.py",
        "mlejax/format/container.py",
        "mlejax/format/graph.py",
        "mlejax/format/SPEC.md",
        "mlejax/lowering/program.py",
        "mlejax/lowering/ops_trees.py",
        "mlejax/exporters/registry.py",
        "mlejax/exporters/sklearn_tree.py",
    ):
        assert must in names, must
    assert not any(n.startswith(("tests/", "format/", "lowering/", "exporters/")) for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    for script in ("mle-export", "mle-inspect", "mle-benchmark", "mle-runtime"):
        assert f"{script} = mlejax.cli:" in text


def test_installed_wheel_imports(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)], check=True)
    code = "import mlejax, mlejax.format, mlejax.lowering, mlejax.exporters; print(mlejax.__file__); print(len(mlejax.supported_models()))"
    env = dict(os.environ, PYTHONPATH=str(target))
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    first, count = out.stdout.split()
    assert Path(first).is_relative_to(target)
    assert int(count) >= 10
