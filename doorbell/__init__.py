"""doorbell: a privacy-first video doorbell controller for the Raspberry Pi.

Importing this package does nothing but define the version: no files, threads or hardware.
"""

__version__ = "0.1.0"
