import os
import tempfile

# Keep the persistent compilation cache of the test run out of the user's cache dir.
os.environ.setdefault("MLEJAX_CACHE_DIR", os.path.join(tempfile.gettempdir(), "mlejax-test-xla-cache"))

import sys

# Tests import their shared helpers as a plain module (pytest runs in importlib mode).
sys.path.insert(0, os.path.dirname(__file__))


def pytest_addoption(parser):
    parser.addoption("--parity-report", nargs="?", const="function", choices=["function", "case"], default=None,
                     help="print the worst parity error per test function (or per parametrized case: =case)")


def pytest_terminal_summary(terminalreporter, config):
    if not config.getoption("--parity-report"):
        return
    from helpers import WORST_ERRORS

    worst: dict[str, float] = {}
    for nodeid, err in WORST_ERRORS.items():
        key = nodeid if config.getoption("--parity-report") == "case" else nodeid.split("[", 1)[0]
        worst[key] = max(worst.get(key, 0.0), err)
    terminalreporter.section("worst |ours - native| per test (float outputs; labels are asserted exact)")
    for key in sorted(worst):
        terminalreporter.write_line(f"{worst[key]:10.2e}  {key}")
