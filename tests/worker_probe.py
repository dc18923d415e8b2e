"""Run inside a nuclei worker by tests/test_slide.py: this module imports nothing heavy itself."""

import sys


def imported(packages: list[str]) -> list[str]:
    """Those of the packages the process has imported."""
    return sorted(name for name in packages if name in sys.modules)
