"""The domain: aggregates, events, rules and (later) policies. No I/O here."""
