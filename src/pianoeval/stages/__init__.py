"""One module per DVC stage (`python -m pianoeval.stages.<name>`); each is a thin main() over the library.

Run that way, a stage first goes through :func:`pianoeval.runtime.start_invoked_stage` (here, so before
the stage module's own imports): stale scratch of a killed run is removed and reported, the stage's
params.yaml section is validated (a bad value fails within a second naming ``section.key``), and
SIGTERM ends the stage like Ctrl-C. Importing a stage module from a test does none of this.
"""

from ..runtime import start_invoked_stage

start_invoked_stage()
