"""The asyncio data plane and supervision of forwards. Rule: knows nothing of the tray or the CLI."""
