"""bench/pushes.py --quick runs end to end and prints its figures, so the bench cannot rot unnoticed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_quick_push_bench_prints_its_figures_and_passes() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "pushes.py"), "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert out.rstrip().endswith("PASS"), out
    assert "5,000 customers" in out and "across 20 guides" in out and "database sqlite" in out, out
    assert re.search(r"trigger -> all tasks created .*: +\d+\.\d+ s", out), out
    assert re.search(r"planning +\d+\.\d+ s: audience resolve +\d+\.\d+ s \+ rows written", out), out
    assert "deliveries created 20/20; targeted 5,000, recipient rows 5,000; run polling" in out, out
    assert "most-recent-interaction rule says: yes" in out, out
    per_customer = float(re.search(r"= (\d+\.\d+) per customer", out).group(1))  # type: ignore[union-attr]
    assert 1.0 <= per_customer < 1.1, out
    assert "INSERT push_recipients      5,000 rows" in out, out
    assert "externalcontact/add_msg_template 20" in out and "message/send 20" in out, out
    assert re.search(r"simulator alone \(bare aiohttp replay of the same bodies\): +\d+\.\d+ s", out), out
    assert re.search(r"ratio service/bare: whole run \d+\.\dx", out), out
