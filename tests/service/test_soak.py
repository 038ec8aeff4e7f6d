"""bench/soak.py, briefly: 5 s at 8 connections against the real server must give 0 errors, 0 5xx and a steady RSS
(the 60-s, 64-connection run is `python bench/soak.py`; its result is in README.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_short_soak_has_no_errors_and_no_memory_growth(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    done = subprocess.run([sys.executable, "bench/soak.py", "--duration", "5", "--warmup", "1", "--concurrency", "8",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["requests"] > 50
    assert (result["errors"], result["server_errors_5xx"]) == (0, 0), result["failures"]
    assert result["rss_growth_mb"] < 50
    assert result["readyz_after"] == 200 and result["server_exit_status"] == 0
    assert set(result["latency_ms"]) == {"sample n=1", "sample n=16", "decode", "reconstruct", "encode"}
