"""mkdocs hook: publish files kept elsewhere in the repository (benchmark plots) without copying them by hand.

``format/SPEC.md`` is included into ``format.md`` with the snippets extension;
the images below are added to the site from where the benchmarks write them.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
#: site path -> repository path
EXTERNAL = {
    "img/trees.png": "benchmarks/results/trees.png",
    "img/batch_scoring.png": "benchmarks/results/batch_scoring.png",
}


def on_config(config):
    """Snippets (``--8<--``) resolve from the repository root, whatever directory mkdocs runs in."""
    config.mdx_configs.setdefault("pymdownx.snippets", {})["base_path"] = [str(ROOT)]
    return config


def on_files(files: Files, config) -> Files:
    for uri, source in EXTERNAL.items():
        files.append(File.generated(config, uri, abs_src_path=str(ROOT / source)))
    return files
