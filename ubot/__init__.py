"""uBot: watches the crypto market and tells people when their conditions come true."""

from importlib.metadata import PackageNotFoundError, version

try:
    #: The installed package's version; its one source is ``version`` in setup.cfg.
    __version__ = version("ubot")
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0+unknown"
