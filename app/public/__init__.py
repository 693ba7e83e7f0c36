"""What phones hit: the scanner fast path in the HTTP server, the scan answers, the card cache,
the counters, bots, the scanner limit and the public pages."""
