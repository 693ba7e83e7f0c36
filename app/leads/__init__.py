"""Contact exchange (SPEC §8): the visitor's details sent back from a card page, the owner's leads.

  form.py      the signed form token, the honeypot, the consent sentence and the form's fields
  leads.py     the types, the SQL and the operations (capture, list, get, delete, export)
  exchange.py  POST /p/{slug}/exchange, the public form's door at the primary
  api.py       the JSON handlers under /v1/leads
"""
