"""What the test suites (and the benchmarks) share, as importable modules.

Helpers live here or as fixtures in ``tests/conftest.py``; a test never imports a conftest
module (``tests/unit/test_suite_layout.py`` keeps it so).
"""

from pathlib import Path

# The repository's root: where the demo, gunicorn and rgw.sh are started from.
REPO = Path(__file__).resolve().parents[2]
