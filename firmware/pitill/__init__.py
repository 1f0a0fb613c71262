"""pitill: the software of a Raspberry Pi payment terminal that keeps selling through an outage."""

__version__ = "0.1.0"
