import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "reference"))
SPEC_DIR = REPO / "model-spec"
SHIPPED_SPECS = sorted(p.name for p in SPEC_DIR.glob("*.yaml"))


@pytest.fixture(scope="session")
def dlvp_bin() -> Path:
    """The dlvp binary scripts/test built (DLVP_BIN), or the default debug build."""
    path = Path(os.environ.get("DLVP_BIN", REPO / "target" / "debug" / "dlvp"))
    if not path.is_file():
        pytest.fail(f"{path}: dlvp binary not built; run scripts/test (it builds it and sets DLVP_BIN)")
    return path
