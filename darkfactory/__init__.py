"""Dark Factory: spec in, tested and documented software out.

Importing this package is cheap on purpose: CrewAI (slow to import) is loaded only by
the commands that run a crew.
"""

__version__ = "0.1.0"
#: The distribution's name on PyPI (``pip install darkfactory-crew``); the import package and
#: the command are ``darkfactory`` (the name ``darkfactory`` is another project's).
DISTRIBUTION = "darkfactory-crew"
