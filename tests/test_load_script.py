"""bench/load.py, the load script, run for real: it must finish cleanly and find nothing wrong.

Why: the script is the project's way to put the demo STS and service under
concurrent load over HTTP; this test keeps it working as the code evolves (it
starts gunicorn, drives every request kind, and checks every outcome). Only
correctness is asserted; its timing figures depend on the machine.
"""

from __future__ import annotations

import re
import subprocess
import sys

from _support import ROOT

#: The request kinds the script must report, each on one row of its table.
KINDS = ("issue", "call", "bad_password", "no_role", "tampered", "wrong_audience")
ROW = re.compile(r"^(?P<kind>[a-z_]+)\s+(?P<count>\d+)\s+(?P<errors>\d+)\s+(?P<admitted>\d+)\s", re.MULTILINE)


def test_load_script_reports_every_kind_without_errors_or_wrong_admissions() -> None:
    result = subprocess.run(
        [sys.executable, "bench/load.py", "--seconds", "3", "--clients", "4"],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    rows = {m["kind"]: m for m in ROW.finditer(result.stdout)}
    for kind in KINDS + ("total",):
        assert kind in rows, f"no row for {kind}:\n{output}"
        assert int(rows[kind]["count"]) > 0, output
        assert int(rows[kind]["errors"]) == 0, output
        assert int(rows[kind]["admitted"]) == 0, output
    assert "result: OK (0 errors, 0 wrongly admitted)" in result.stdout, output
    assert "reproduce: cd " in result.stdout and "bench/load.py --seconds 3 --clients 4" in result.stdout, output
