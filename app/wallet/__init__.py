"""Wallet passes (SPEC §10): the card as an Apple Wallet pass (apple.py) and as a Google
Wallet save link (google.py), from the operator's keys (keys.py, checked at start)."""
