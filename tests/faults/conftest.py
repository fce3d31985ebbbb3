"""Fixtures for carrier's fault-injection tests: the end-to-end fixtures of tests/e2e
(carrier_factory runs the REAL binary on 127.0.0.1), loaded under another module name so that
this directory and tests/e2e can be collected in one pytest run. Handles no untrusted input.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

E2E = Path(__file__).resolve().parents[1] / "e2e"
if str(E2E) not in sys.path:
    sys.path.insert(0, str(E2E))

_spec = importlib.util.spec_from_file_location("carrier_e2e_conftest", E2E / "conftest.py")
_e2e = importlib.util.module_from_spec(_spec)
sys.modules["carrier_e2e_conftest"] = _e2e
_spec.loader.exec_module(_e2e)

# What tests/e2e/relay_helpers.py imports from "conftest" (the module of that name here).
CARRIER_BIN, REPO, Carrier, default_sections = (_e2e.CARRIER_BIN, _e2e.REPO, _e2e.Carrier,
                                                _e2e.default_sections)
carrier_factory = _e2e.carrier_factory
carrier = _e2e.carrier
pytest_runtest_makereport = _e2e.pytest_runtest_makereport
