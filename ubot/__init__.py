"""uBot: watches the crypto market and tells people when their conditions come true."""

__version__ = "0.1.0"
