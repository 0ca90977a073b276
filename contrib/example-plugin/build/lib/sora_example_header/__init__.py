"""Example third-party Sora plugin: adds a configurable header to delivered messages."""
