import os
import tempfile

# Keep the persistent compilation cache of the test run out of the user's cache dir.
os.environ.setdefault("MLEJAX_CACHE_DIR", os.path.join(tempfile.gettempdir(), "mlejax-test-xla-cache"))

import sys

# Tests import their shared helpers as a plain module (pytest runs in importlib mode).
sys.path.insert(0, os.path.dirname(__file__))
