"""CLI sub-apps, one module per command group; each is thin over the library."""
