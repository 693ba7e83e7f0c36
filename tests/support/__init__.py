"""What tests share: helpers and harnesses (live servers, `qrcontact serve`, moto as S3,
SMTP, Chromium), imported by the tests of every tier. Test modules import from here, never
from one another; the fixtures built on these live in the conftest.py of the tier using them.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
