"""gendet's version, in a module of its own so that any layer can read it without importing the package facade."""

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("gendet")
except PackageNotFoundError:  # running from a source tree that was never installed
    VERSION = "0.0.0+unknown"
