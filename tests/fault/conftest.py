# SPDX-License-Identifier: MIT
"""The fault suite runs on the integration harness (tests/integration/conftest.py):
the same real redis-server and notifyqd fixtures, loaded here under this
directory's conftest so that `from conftest import ...` and the integration
helpers (test_worker_jobs.Jobs, ...) resolve to it."""
import importlib.util
import sys
from pathlib import Path

_INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
sys.path.insert(0, str(_INTEGRATION))
_spec = importlib.util.spec_from_file_location("nq_integration_harness",
                                               _INTEGRATION / "conftest.py")
_harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_harness)
globals().update({k: v for k, v in vars(_harness).items() if not k.startswith("__")})
