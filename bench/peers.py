"""prefork against uvicorn and gunicorn's sync worker on hello world: a preset of the suite.

Run: ``bench/venv/bin/python bench/peers.py [suite options]``. The quick look the suite grew from:
``hello`` and ``hello-close`` for the four servers that began the comparison, written to
``bench/out/peers.md``. Options given here are passed on and override the preset.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRESET = ["--servers", "prefork,uvicorn,prefork-wsgi,gunicorn-sync",
          "--scenarios", "hello,hello-close", "--output", str(ROOT / "bench" / "out" / "peers.md")]

if __name__ == "__main__":
    os.chdir(ROOT)
    os.execv(sys.executable, [sys.executable, "-m", "bench.suite", *PRESET, *sys.argv[1:]])
