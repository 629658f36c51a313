"""Sans-I/O byte formats of the port-forward protocols. Rule: standard library only, no asyncio, no I/O."""
