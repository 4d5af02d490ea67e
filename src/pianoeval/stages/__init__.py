"""One module per DVC stage (`python -m pianoeval.stages.<name>`); each is a thin main() over the library."""
