"""sspnet command modules."""
