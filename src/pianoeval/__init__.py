"""pianoeval: data-versioned piano-performance assessment (PercePiano, masterclass STOP prediction, audit)."""

__version__ = "0.1.0"
