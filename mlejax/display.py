"""Rich display in Jupyter: the HTML behind every ``_repr_mimebundle_`` of mlejax.

One small renderer (:func:`card` of titled sections holding :func:`fields`
lists, :func:`table` grids, :func:`chips` and :func:`badge` marks) and a view
per object built on it: :func:`model_html`, :func:`inspect_html`,
:func:`export_html`, :func:`score_html`, :func:`version_html` and
:func:`listing_html`. Styles are inline attributes (no ``<style>`` block for a
sanitizer to strip, no external asset) and colours are translucent, so the
cards read in light and dark themes and keep their layout under JupyterLab's
table styles.

Every value is HTML-escaped where it is written: only markup made here
(:class:`Markup`) is inserted as is, so a crafted file's metadata (estimator,
class labels, feature names, tags) shows as text and never runs. Importing
this module imports neither IPython nor pandas.
"""

from __future__ import annotations

import html
from collections import Counter
from typing import Any, Callable, Iterable, Mapping, Sequence

from .export import TOLERANCE
from .format.signing import fingerprint
from .inspect import signature_state, source_info

__all__ = [
    "Markup", "mimebundle", "card", "fields", "table", "chips", "badge",
    "model_html", "inspect_html", "export_html", "score_html", "benchmark_html", "version_html", "listing_html",
]

#: How many class labels, feature names or rows of a long list are shown before "… (N in all)".
FIRST = 10

_FONT = "font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; font-size: 13px; line-height: 1.45;"
_MONO = "font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.92em;"
_LINE = "rgba(127, 127, 127, 0.3)"
_TINT = "rgba(127, 127, 127, 0.08)"
_TONES = {"ok": "46, 160, 67", "warn": "210, 153, 34", "bad": "218, 54, 51", "info": "56, 132, 244", "plain": "127, 127, 127"}
_CARD = f"{_FONT} display: inline-block; min-width: 420px; max-width: 980px; border: 1px solid {_LINE}; border-radius: 6px; margin: 2px 0; overflow: hidden;"
_HEAD = f"padding: 7px 12px; background: {_TINT}; border-bottom: 1px solid {_LINE};"
_SUMMARY = "cursor: pointer; padding: 5px 12px; font-weight: 600; font-size: 12px; letter-spacing: 0.03em; text-transform: uppercase; opacity: 0.8;"
_BODY = "padding: 0 12px 8px 26px;"
_TABLE = "border-collapse: collapse; margin: 0; text-align: left; font-size: inherit; line-height: inherit;"
_TH = f"text-align: left; padding: 2px 14px 2px 0; border-bottom: 1px solid {_LINE}; font-weight: 600; white-space: nowrap;"
_KEY = "text-align: left; vertical-align: baseline; padding: 1px 16px 1px 0; min-width: 7.5em; font-weight: normal; opacity: 0.7; white-space: nowrap;"
_TD = "text-align: left; vertical-align: baseline; padding: 1px 14px 1px 0;"
_NUM = "text-align: right; vertical-align: baseline; padding: 1px 14px 1px 0; font-variant-numeric: tabular-nums; white-space: nowrap;"


class Markup(str):
    """HTML made by this module: inserted as is, where any other value is escaped."""


def _h(value: Any) -> Markup:
    """``value`` as HTML: markup as is, anything else as escaped text."""
    return value if isinstance(value, Markup) else Markup(html.escape(str(value), quote=True))


def mimebundle(obj: Any, view: Callable[[Any], str], include: Any = None, exclude: Any = None) -> dict[str, str]:
    """``{"text/plain": repr(obj), "text/html": view(obj)}`` for ``_repr_mimebundle_``, filtered by ``include``/``exclude``."""
    renderers = {"text/plain": repr, "text/html": view}
    return {
        mime: render(obj) for mime, render in renderers.items()
        if (include is None or mime in include) and (exclude is None or mime not in exclude)
    }


# --- the renderer -----------------------------------------------------------------------
def card(title: Any, subtitle: Any, sections: Sequence[tuple[str, Any]], *, closed: Sequence[str] = ()) -> Markup:
    """A bordered box: a title line, then one collapsible section per ``(heading, content)`` (empty ones left out).

    Sections named in ``closed`` start collapsed.
    """
    head = f'<div style="{_HEAD}"><b style="font-size: 14px;">{_h(title)}</b>'
    if subtitle:
        head += f' <span style="opacity: 0.75;">{_h(subtitle)}</span>'
    parts = [f'<div class="mlejax-repr" style="{_CARD}">{head}</div>']
    for heading, content in sections:
        if content:
            state = "" if heading in closed else " open"
            parts.append(f'<details{state}><summary style="{_SUMMARY}">{_h(heading)}</summary><div style="{_BODY}">{_h(content)}</div></details>')
    return Markup("".join(parts) + "</div>")


def fields(pairs: Iterable[tuple[str, Any]]) -> Markup:
    """A two-column list of labelled values; pairs whose value is ``None`` are left out."""
    rows = "".join(f'<tr><th style="{_KEY}">{_h(k)}</th><td style="{_TD}">{_h(v)}</td></tr>' for k, v in pairs if v is not None)
    return Markup(f'<table style="{_TABLE}">{rows}</table>') if rows else Markup("")


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], *, numeric: Sequence[int] = (), more: int = 0) -> Markup:
    """A grid with a header row; columns in ``numeric`` are right-aligned; ``more`` rows not shown are counted below it."""
    head = "".join(f'<th style="{_TH}{" text-align: right;" if i in numeric else ""}">{_h(h)}</th>' for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f'<td style="{_NUM if i in numeric else _TD}">{_h(v)}</td>' for i, v in enumerate(row)) + "</tr>"
        for row in rows
    )
    if not body:
        return Markup("")
    note = f'<div style="opacity: 0.7;">… and {more:,} more</div>' if more > 0 else ""
    return Markup(f'<table style="{_TABLE}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}')


def badge(text: Any, tone: str = "plain") -> Markup:
    """A rounded mark: ``tone`` is ``ok``, ``warn``, ``bad``, ``info`` or ``plain``."""
    rgb = _TONES[tone]
    return Markup(f'<span style="display: inline-block; padding: 0 7px; margin: 1px 2px 1px 0; border-radius: 9px; '
                  f'background: rgba({rgb}, 0.16); border: 1px solid rgba({rgb}, 0.55); white-space: nowrap;">{_h(text)}</span>')


def chips(items: Iterable[Any], tone: str = "plain") -> Markup:
    """Values as a wrapping row of badges."""
    return Markup("".join(badge(item, tone) for item in items))


def _code(text: Any) -> Markup:
    """Monospace text (names, paths, hashes)."""
    return Markup(f'<code style="{_MONO}">{_h(text)}</code>')


def _first(values: Sequence[Any] | None, n: int = FIRST) -> str | None:
    """``"a, b, c … (N in all)"``: the first ``n`` values of a long list; ``None`` for ``None``."""
    if values is None:
        return None
    values = list(values)
    shown = ", ".join(map(str, values[:n]))
    return shown if len(values) <= n else f"{shown} … ({len(values):,} in all)"


def _nbytes(n: int | None) -> str | None:
    """``1.23 MB``-style sizes (decimal units, as the README's tables)."""
    if n is None:
        return None
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:,} B"


def _count(n: int, word: str) -> str:
    """``"1 batch"``, ``"3 batches"``: ``n`` with ``word`` made plural (``-s``, ``-es`` after ``ch``)."""
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}{'es' if word.endswith('ch') else 's'}"


def _error(x: float | None) -> str:
    return "—" if x is None else "0" if x == 0 else f"{x:.2e}"


# --- pieces shared by the views ---------------------------------------------------------
def _source(metadata: Mapping[str, Any]) -> list[tuple[str, Any]]:
    source = source_info(metadata)
    framework = source.get("framework")
    if framework is not None and source.get("framework_version"):
        framework = f"{framework} {source['framework_version']}"
    exported = metadata.get("created")
    if exported is not None and metadata.get("mlejax_version"):
        exported = f"{exported} (mlejax {metadata['mlejax_version']})"
    return [("source", _code(source.get("estimator", "unknown"))), ("framework", framework), ("exported", exported)]


def _inputs(inputs: Sequence[Mapping[str, Any]]) -> Markup:
    """Input schema: name, dtype, shape (``batch`` for the batch dimension), first feature names."""
    rows = [
        (_code(i.get("name")), i.get("dtype"), "[" + ", ".join("batch" if d is None else str(d) for d in i.get("shape") or []) + "]",
         _first(i.get("feature_names")) or "")
        for i in inputs
    ]
    named = any(row[3] for row in rows)
    return table(("input", "dtype", "shape", "features")[: 3 + named], [row[: 3 + named] for row in rows])


def _ops(ops: Mapping[str, int]) -> Markup:
    return chips(f"{op} ×{n}" for op, n in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0])))


def _classes(classes: Sequence[Any] | None) -> Any:
    return None if classes is None else f"{len(classes)}: {_first(classes)}"


def _parity(verification: Mapping[str, Any] | None) -> Markup:
    """Per method, the worst error of the export check against the source model, and whether it is within the bound."""
    if not verification:
        return Markup("")
    rows = []
    for method, result in verification.items():
        if not isinstance(result, Mapping):
            continue
        mismatches = result.get("label_mismatches")
        rel = result.get("max_rel_error")
        good = mismatches == 0 if mismatches is not None else isinstance(rel, (int, float)) and rel <= TOLERANCE
        verdict = badge("exact" if mismatches == 0 or rel == 0 else "within bound" if good else "over bound", "ok" if good else "bad")
        rows.append((_code(method), _error(result.get("max_abs_error")), _error(rel), "" if mismatches is None else f"{mismatches:,}", verdict))
    note = Markup(f'<div style="opacity: 0.7;">on {verification.get("rows", "?")} sample rows; bound |ours − native| ≤ '
                  f'{TOLERANCE:g} · (1 + |native|)</div>')
    return Markup(table(("method", "max abs error", "max rel error", "label mismatches", ""), rows, numeric=(1, 2, 3)) + note)


def _signature(state: str, signer: str | None = None) -> Markup:
    tone = {"signed (verified)": "ok", "signed (not verified)": "warn"}.get(state, "plain")
    return Markup(badge(state, tone) + (f" {_code(signer)}" if signer else ""))


def _quantization(q: Mapping[str, Any] | None) -> Any:
    if not q:
        return "none"
    quantized = q.get("quantized")
    count = f"{len(quantized)} tensors, " if isinstance(quantized, (list, dict)) else ""
    return f"{q.get('mode')} ({count}{_nbytes(q.get('bytes_before'))} → {_nbytes(q.get('bytes_after'))})"


# --- the views --------------------------------------------------------------------------
#: ``TreeEnsemble`` node inputs: X, feature, threshold, left, right, default_left, values, roots (lowering/ops_trees.py).
_ROOTS = 7


def _trees(graph: Any, tensors: Mapping[str, Any]) -> str | None:
    """``"100 trees, 12,345 nodes, depth ≤ 8"`` over the graph's tree ensembles; ``None`` without one."""
    trees = nodes = depth = 0
    for node in graph.nodes:
        if node.op == "TreeEnsemble" and len(node.inputs) > _ROOTS:
            trees += len(tensors.get(node.inputs[_ROOTS], ()))
            nodes += len(tensors.get(node.inputs[1], ()))
            depth = max(depth, int(node.attrs.get("max_depth", 0)))
    return f"{trees:,} trees, {nodes:,} nodes, depth ≤ {depth}" if trees else None


def model_html(model: Any) -> Markup:
    """A loaded :class:`mlejax.Model`: source, methods, schema, graph, file state, device and compiled programs."""
    f, meta, graph, program = model._file, model.metadata, model.graph, model.program
    readers: dict[str, list[str]] = {}
    for method, output in sorted(model.methods.items()):
        readers.setdefault(output, []).append(method)
    names = getattr(model, "feature_names_in_", None)
    inputs = [{"name": i.name, "dtype": i.dtype, "shape": i.shape,
               "feature_names": list(names) if k == 0 and names is not None else i.feature_names}
              for k, i in enumerate(graph.inputs)]
    tensors = f.tensors
    compiled = [(", ".join(key[0]), f"{key[1][0][0]:,}" if key[1] and key[1][0] else "—", f"{seconds * 1e3:,.0f}")
                for key, seconds in program.compile_seconds.items()]
    buckets = program.batch_buckets
    return card("mlejax.Model", model.source_estimator, [
        ("Model", fields([
            *_source(meta),
            ("methods", chips(sorted(model.methods), "info")),
            ("features", None if model.n_features_in_ is None else f"{model.n_features_in_:,}"),
            ("classes", _classes(None if model.classes_ is None else list(model.classes_))),
        ])),
        ("Inputs", _inputs(inputs)),
        ("Outputs", table(("output", "read by"), [(_code(o), ", ".join(readers.get(o, [])) or "run()") for o in model.outputs])),
        ("Graph", fields([
            ("nodes", f"{len(graph.nodes):,}"),
            ("trees", _trees(graph, tensors)),
            ("parameters", f"{sum(int(a.size) for a in tensors.values()):,} values in {len(tensors):,} tensors "
                           f"({_nbytes(sum(int(a.nbytes) for a in tensors.values()))})"),
            ("ops", _ops(Counter(n.op for n in graph.nodes))),
        ])),
        ("File", fields([
            ("size", _nbytes(f.file_size)),
            ("format version", f.format_version),
            ("compression", "zstd" if any(s.compressed for s in f.sections) else "none (memory-mapped)"),
            ("quantization", _quantization(meta.get("quantization"))),
            ("signature", _signature(signature_state(f), fingerprint(f.signer) if f.signer else None)),
            ("encryption", badge("AES-256-GCM", "info") if f.encrypted else "none"),
        ])),
        ("Parity at export", _parity(meta.get("verification"))),
        ("Runtime", fields([
            ("device", _code(model.device)),
            ("batch buckets", "exact sizes" if buckets is None else buckets if isinstance(buckets, str) else _first(list(buckets))),
            ("tile", f"{program.max_tile:,} rows" if buckets is not None else None),
            ("tree strategy", model.tree_strategy or None),
            ("compiled", table(("outputs", "batch", "compile ms"), compiled, numeric=(1, 2)) or "nothing yet (compiled on the first call per batch size)"),
        ])),
    ], closed=("Graph",) if len(graph.nodes) > 20 else ())


def inspect_html(info: Mapping[str, Any]) -> Markup:
    """The :func:`mlejax.inspect_model` report: file, source, schema, ops, largest tensors, sections, recommendations."""
    meta = info.get("metadata") or {}
    tensors = sorted(info.get("tensors", []), key=lambda t: -t["nbytes"])
    classes = (meta.get("classes") or {}).get("values") if isinstance(meta.get("classes"), Mapping) else None
    return card("mlejax file", info.get("path"), [
        ("File", fields([
            ("size", _nbytes(info.get("file_size_bytes"))),
            ("format version", info.get("format_version")),
            ("signature", _signature(info.get("signature", "unsigned"), info.get("signer"))),
            ("encryption", badge("AES-256-GCM", "info") if info.get("encrypted") else "none"),
            ("compression", "zstd" if any(s["compressed"] for s in info.get("sections", [])) else "none"),
            ("quantization", _quantization(meta.get("quantization"))),
        ])),
        ("Model", fields([
            *_source(meta),
            ("methods", chips(sorted(meta.get("methods") or {}), "info")),
            ("classes", _classes(classes)),
        ])),
        ("Inputs", _inputs(info.get("inputs", []))),
        ("Outputs", table(("output", "value"), [(_code(k), _code(v)) for k, v in (info.get("outputs") or {}).items()])),
        ("Ops", _ops(info.get("ops") or {})),
        (f"Tensors ({len(tensors):,}, {_nbytes(info.get('tensor_bytes'))})", table(
            ("tensor", "dtype", "shape", "bytes"),
            [(_code(t["name"]), t["dtype"], str(t["shape"]), f"{t['nbytes']:,}") for t in tensors[:FIRST]],
            numeric=(3,), more=len(tensors) - FIRST)),
        ("Sections", table(("section", "stored bytes", "raw bytes", "compressed"),
                           [(s["kind"], f"{s['stored_bytes']:,}", f"{s['raw_bytes']:,}", "yes" if s["compressed"] else "")
                            for s in info.get("sections", [])], numeric=(1, 2))),
        ("Parity at export", _parity(meta.get("verification"))),
        ("Recommendations", Markup("".join(f"<div>• {_h(r)}</div>" for r in info.get("recommendations", [])))),
    ], closed=("Sections", f"Tensors ({len(tensors):,}, {_nbytes(info.get('tensor_bytes'))})"))


def export_html(report: Mapping[str, Any]) -> Markup:
    """The :func:`mlejax.export_model` report: file written, sizes, time, and parity per method."""
    q = report.get("quantization")
    q_error = (q or {}).get("error")
    return card("mlejax export", f"{report.get('estimator')} → {report.get('path')}", [
        ("File", fields([
            ("size", _nbytes(report.get("file_size_bytes"))),
            ("tensors", _nbytes(report.get("tensor_bytes"))),
            ("compression", f"{report.get('compression') or 'none'} (tensor bytes / file size {report.get('compression_ratio', 0):.2f})"),
            ("quantization", _quantization(q)),
            ("encryption", badge("AES-256-GCM", "info") if report.get("encrypted") else "none"),
            ("export time", f"{report.get('export_time_ms', 0):,.0f} ms"),
            ("methods", chips(report.get("methods") or [], "info")),
            ("ops", _ops(report.get("ops") or {})),
        ])),
        ("Parity against the source model", _parity(report.get("verification")) or "not checked: pass sample_input= to export_model"),
        ("Quantization error against the unquantized model", table(
            ("method", "max abs error", "max rel error", "mismatches"),
            [(_code(m), _error(e.get("max_abs_error")), _error(e.get("max_rel_error")), e.get("mismatches", ""))
             for m, e in (q_error or {}).items()], numeric=(1, 2, 3))),
    ])


def _bar(fraction: float) -> Markup:
    width = max(0.0, min(1.0, fraction)) * 160
    rgb = _TONES["info"]
    return Markup(f'<span style="display: inline-block; width: {width:.0f}px; height: 9px; border-radius: 2px; background: rgba({rgb}, 0.6);"></span>')


def score_html(report: Any) -> Markup:
    """A :class:`mlejax.batch.ScoreReport`: rows, time, rate, devices, time per stage, peak memory."""
    from .batch.report import STAGES

    stages = report.stages or {}
    slowest = max(stages.values(), default=0.0) or 1.0
    output = report.output if isinstance(report.output, str) else "in memory (report.output)" if report.output is not None else None
    return card("mlejax.score", f"{report.rows:,} rows · {report.rows_per_s:,.0f} rows/s", [
        ("Run", fields([
            ("rows", f"{report.rows:,} in {_count(report.batches, 'batch')} of ≤ {report.batch_rows:,}"),
            ("time", f"{report.seconds:.3f} s ({report.rows_per_s:,.0f} rows/s)"),
            ("method", _code(report.method)),
            ("devices", chips(report.devices)),
            ("peak RSS", f"{report.peak_rss_bytes / 2**20:,.0f} MiB"),
            ("input columns", _first(report.columns)),
            ("output columns", _first(report.output_columns)),
            ("output", None if output is None else _code(output)),
        ])),
        ("Time per stage (s)", table(("stage", "seconds", ""),
                                     [(s, f"{stages.get(s, 0.0):.3f}", _bar(stages.get(s, 0.0) / slowest)) for s in STAGES],
                                     numeric=(1,))),
    ])


def benchmark_html(report: Any) -> Markup:
    """A :class:`mlejax.BenchmarkReport`: median and p95 latency and rows/s per runner and batch size."""
    best = {b: max(report.throughput(b).values()) for b in report.batch_sizes}
    rows = [
        (r["runner"], f"{r['batch_size']:,}", f"{r['p50_ms']:.4g}", f"{r['p95_ms']:.4g}", f"{r['rows_per_s']:,.0f}",
         _bar(r["rows_per_s"] / best[r["batch_size"]] if best[r["batch_size"]] else 0.0))
        for r in report.rows
    ]
    return card("mlejax.benchmark", f"{report.method} on {report.device}", [
        ("Runs", table(("runner", "batch", "p50 ms", "p95 ms", "rows/s", "vs fastest"), rows, numeric=(1, 2, 3, 4))),
    ])


def _parent(parent: Any) -> Any:
    """What a lineage ``parent`` names: ``NAME:VERSION``, a ``registry://`` URI, a path or a sha256."""
    if not isinstance(parent, Mapping):
        return parent
    if "name" in parent:
        return f"{parent['name']}:{parent.get('version')}"
    return parent.get("uri") or parent.get("path") or parent.get("sha256")


def version_html(version: Any) -> Markup:
    """A registry :class:`mlejax.registry.ModelVersion`: reference, aliases, tags, source, schema, lineage."""
    info, lineage = version.info or {}, version.lineage or {}
    git = lineage.get("git") if isinstance(lineage.get("git"), Mapping) else {}
    return card(f"{version.name}:{version.version}", version.estimator, [
        ("Version", fields([
            ("uri", _code(version.uri)),
            ("aliases", chips(version.aliases, "ok") or None),
            ("tags", chips(f"{k}={v}" for k, v in version.tags.items()) or None),
            ("description", version.description),
            ("registered", version.created_at),
            ("size", _nbytes(version.size)),
            ("sha256", _code(version.sha256)),
            ("signature", _signature("signed (not verified)" if info.get("signed") else "unsigned")),
        ])),
        ("Model", fields([
            ("source", _code(info.get("estimator", "unknown"))),
            ("framework", " ".join(str(x) for x in (info.get("framework"), info.get("framework_version")) if x)),
            ("exported", info.get("exported_at")),
            ("methods", chips(info.get("methods") or [], "info")),
            ("outputs", _first(info.get("outputs"))),
            ("classes", _classes(info.get("classes"))),
            ("ops", _ops(info.get("ops") or {})),
        ])),
        ("Inputs", _inputs(info.get("inputs") or [])),
        ("Lineage", fields([
            ("git commit", None if not git.get("commit") else f"{git['commit']}{' (dirty)' if git.get('dirty') else ''}"),
            ("parent", _parent(lineage.get("parent"))),
            ("training data", (lineage.get("training_data") or {}).get("sha256") if isinstance(lineage.get("training_data"), Mapping) else None),
        ])),
    ])


def listing_html(entries: Sequence[Any]) -> Markup:
    """A registry listing: versions (``versions``, ``search``) or models (``list_models``) as one table."""
    if entries and isinstance(entries[0], Mapping):
        rows = [(_code(e.get("name")), e.get("latest_version"), e.get("versions"),
                 chips(f"{a}→{v}" for a, v in (e.get("aliases") or {}).items()), e.get("created_at"))
                for e in entries]
        return card("mlejax registry", _count(len(entries), "model"), [
            ("Models", table(("name", "latest", "versions", "aliases", "created"), rows, numeric=(1, 2)))])
    rows = [(_code(v.uri), chips(v.aliases, "ok"), _code(v.estimator or "?"), _nbytes(v.size), v.created_at,
             chips(f"{k}={val}" for k, val in v.tags.items()))
            for v in entries]
    return card("mlejax registry", _count(len(entries), "version"), [
        ("Versions", table(("version", "aliases", "source", "size", "registered", "tags"), rows, numeric=(3,)) or "none")])
