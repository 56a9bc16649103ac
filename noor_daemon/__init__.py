"""NoorAPI daemon: the metering LLM gateway."""

__version__ = "0.1.0"
