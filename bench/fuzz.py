"""The fuzz suite with many more examples than the test run uses:

    python -m bench.fuzz [--examples 1000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz")
    parser.add_argument("--examples", type=int, default=1000)
    args = parser.parse_args()
    env = {**os.environ, "YMDS_FUZZ_EXAMPLES": str(args.examples)}
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests/test_fuzz_routes.py"]
    raise SystemExit(subprocess.call(command, cwd=ROOT, env=env))


if __name__ == "__main__":
    main()
