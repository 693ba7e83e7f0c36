"""Failover by one command (SPEC §11) with real processes and moto: the drill of
tests/support/failover.py (the primary killed with SIGKILL and its data folder deleted
under writes and scans, `qrcontact promote` on an edge). bench/failover.py runs the same
drill, several times, and prints its figures.
"""

from __future__ import annotations

from tests.support.failover import drill


def test_promote_an_edge_after_the_primary_and_its_disk_are_lost(s3_endpoint, tmp_path):
    figures = drill(tmp_path, s3_endpoint, "failover", old_primary_back=False)  # bench/failover.py brings it back
    assert figures.rto < 60
    print(f"\nRTO {figures.rto:.1f} s; RPO {figures.rpo:.2f} s ({figures.lost} of {figures.written} cards lost); "
          f"{figures.scans} scans at the second edge, none failed, {figures.scans_lost} lost with the old primary")
