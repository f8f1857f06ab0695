"""sspnet: find tiny people in large drone images with a faithful SSPNet detector."""

__version__ = "0.1.0"
