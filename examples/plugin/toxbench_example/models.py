"""A model alias: the micro organism under the lab's own name, with the loader arguments it needs."""

from toxbench.models import ModelEntry

# The entry point names this object; a plain loader function returning a ModelSource works too.
EXAMPLE_MICRO = ModelEntry(
    "toxbench.organism.build:organism_source",
    defaults={"size": "micro", "variant": "base"},
    description="the micro organism, registered by the example plugin",
    scorer="lexicon",
)
