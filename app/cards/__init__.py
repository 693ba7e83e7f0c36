"""The cards domain: a contact card (its types, SQL, operations and API handlers) and its stats report."""
