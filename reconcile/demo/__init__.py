"""The built-in gateway (server, store, switches) and the demo data it serves."""
