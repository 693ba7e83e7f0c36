"""Operating the service: request ids and the access log, metrics, health and diagnostics
(monitoring), replication, backups."""
