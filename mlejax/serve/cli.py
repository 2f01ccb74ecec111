"""``mle-serve``: serve ``.mle`` models over HTTP (Open Inference Protocol) with uvicorn.

    mle-serve churn=models/churn.mle fraud.mle --port 8000 --max-batch-rows 256

Each model is a path (served under its file's stem) or ``name=path``. SIGTERM
stops taking connections, answers the requests in flight, then exits. SIGHUP
reloads every model from its file. With ``--workers`` above 1, each worker
process compiles before it accepts a connection, and SIGHUP makes uvicorn
restart the workers instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence

from ..cli import add_debug_flag, run_cli

__all__ = ["serve_main", "app_from_env", "parse_models"]

#: Where ``--workers`` > 1 passes the settings to each worker process's :func:`app_from_env`.
_ENV = "MLEJAX_SERVE_SETTINGS"


def parse_models(specs: Sequence[str]) -> dict[str, str]:
    """``["a=x.mle", "y.mle"]`` -> ``{"a": "x.mle", "y": "y.mle"}``; a name given twice is an error."""
    models: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or os.sep in name:
            name, path = os.path.splitext(os.path.basename(spec))[0], spec
        if not name or not path:
            raise ValueError(f"model {spec!r}: expected a .mle path or name=path")
        if name in models:
            raise ValueError(f"model name {name!r} given twice ({models[name]} and {path}); use name=path to tell them apart")
        models[name] = path
    return models


def read_api_keys(path: str) -> list[str]:
    """The API keys in ``path``, one per line (blank lines ignored)."""
    with open(path, encoding="utf-8") as f:
        keys = [line.strip() for line in f if line.strip()]
    if not keys:
        raise ValueError(f"{path}: no API key in the file (one key per line)")
    return keys


def _app(settings: dict) -> Any:
    from . import create_app

    return create_app(
        settings["models"], max_batch_rows=settings["max_batch_rows"], max_delay_ms=settings["max_delay_ms"],
        max_queue=settings["max_queue"], max_body_bytes=settings["max_body_bytes"], device=settings["device"],
        api_keys=read_api_keys(settings["api_key_file"]) if settings["api_key_file"] else (),
        reload_on_sighup=settings["workers"] == 1, warm_before_serving=settings["workers"] > 1,
    )


def app_from_env() -> Any:
    """The app of one ``--workers`` process, from the settings the parent put in ``$MLEJAX_SERVE_SETTINGS``."""
    return _app(json.loads(os.environ[_ENV]))


def serve_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mle-serve``."""
    parser = argparse.ArgumentParser(prog="mle-serve", description=__doc__.split("\n\n")[0].strip("`: "))
    parser.add_argument("models", nargs="+", help="a .mle path (served under its stem) or name=path")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-batch-rows", type=int, default=256, help="rows per merged model call, and per request")
    parser.add_argument("--max-delay-ms", type=float, default=0.0,
                        help="how long a batch that is not full waits for more (default 0: batches still form while the previous one runs)")
    parser.add_argument("--max-queue", type=int, default=1024, help="requests waiting per model method before 503")
    parser.add_argument("--max-body-bytes", type=int, default=16 << 20, help="larger request bodies get 413")
    parser.add_argument("--device", default=None, help="cpu or gpu (default: JAX's default device)")
    parser.add_argument("--api-key-file", default=None, help="file of API keys, one per line: every route but health needs one")
    parser.add_argument("--workers", type=int, default=1, help="server processes (each loads and compiles every model)")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    add_debug_flag(parser)

    def body(args: argparse.Namespace) -> int:
        import uvicorn

        settings = {
            "models": parse_models(args.models), "max_batch_rows": args.max_batch_rows, "max_delay_ms": args.max_delay_ms,
            "max_queue": args.max_queue, "max_body_bytes": args.max_body_bytes, "device": args.device,
            "api_key_file": args.api_key_file and os.path.abspath(args.api_key_file), "workers": args.workers,
        }
        common = {"host": args.host, "port": args.port, "log_level": args.log_level, "timeout_graceful_shutdown": 30}
        if args.workers > 1:
            _app(settings)  # fail here, once, on a bad file or option
            os.environ[_ENV] = json.dumps(settings)
            uvicorn.run("mlejax.serve.cli:app_from_env", factory=True, workers=args.workers, **common)
        else:
            uvicorn.run(_app(settings), **common)
        return 0

    return run_cli(parser, argv, body)


if __name__ == "__main__":
    sys.exit(serve_main())
