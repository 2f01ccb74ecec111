"""mkdocs hook: publish files kept elsewhere in the repository (benchmark plots) without copying them by hand.

``format/SPEC.md`` is included into ``format.md`` with the snippets extension;
the images below are added to the site from where the benchmarks write them.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
#: site path -> repository path
EXTERNAL = {
    "img/trees.png": "benchmarks/results/trees.png",
    "img/batch_scoring.png": "benchmarks/results/batch_scoring.png",
}


#: A Sphinx role left in a rendered docstring: ``:func:`~mlejax.x``` arrives as ``:func:<code>~mlejax.x</code>``.
_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj):<code>(~?)([^<]*)</code>")


def on_page_content(html: str, **_) -> str:
    """Docstrings use Sphinx roles (``:func:`name```); show them as plain code (``~`` keeps the last name)."""
    return _ROLE.sub(lambda m: f"<code>{m[2].rsplit('.', 1)[-1] if m[1] else m[2]}</code>", html)


def on_config(config):
    """Snippets (``--8<--``) resolve from the repository root, whatever directory mkdocs runs in."""
    config.mdx_configs.setdefault("pymdownx.snippets", {})["base_path"] = [str(ROOT)]
    return config


def on_files(files: Files, config) -> Files:
    for uri, source in EXTERNAL.items():
        files.append(File.generated(config, uri, abs_src_path=str(ROOT / source)))
    return files
