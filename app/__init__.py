"""QR Contact: self-hosted digital contact cards with QR codes."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("qrcontact")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
