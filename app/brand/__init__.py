"""The team's brand (SPEC §10): its types, SQL, operations and API."""
