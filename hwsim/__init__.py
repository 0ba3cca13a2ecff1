"""hwsim: what does training cost on this hardware, and what would a local learning rule save?"""

# The one place the version is written: pyproject.toml reads it from here (its `dynamic`
# version), so that no command pays for importlib.metadata at start-up.
__version__ = "0.1.0"

__all__ = ["__version__"]
