"""Edge regions, both ends: the edge's app, its copy and follower, its outbox and shipper; the
primary's internal port, the scan batches it applies and the card changes it serves."""
