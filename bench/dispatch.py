"""Compare prefork's three ``--dispatch`` modes side by side: a preset of the suite.

Run: ``python bench/dispatch.py [suite options]`` (e.g. ``--rounds 4 --duration 5``). Hello
world keep-alive, with ``Connection: close`` (connection set-up, where the modes differ) and
with two unpinned workers; the ratio column is against ``reuseport``, the default mode. Written
to ``bench/out/dispatch.md``. Options given here are passed on and override the preset.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRESET = ["--servers", "prefork,prefork-roundrobin,prefork-shared",
          "--scenarios", "hello,hello-close,hello-2w", "--reference", "prefork",
          "--output", str(ROOT / "bench" / "out" / "dispatch.md")]

if __name__ == "__main__":
    os.chdir(ROOT)
    os.execv(sys.executable, [sys.executable, "-m", "bench.suite", *PRESET, *sys.argv[1:]])
