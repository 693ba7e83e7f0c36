"""Events (SPEC §9): what happens, recorded by `Tx.emit` in the operation's own transaction,
read back by the event API and the live stream, and delivered by webhooks."""
