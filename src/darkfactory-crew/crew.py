"""What `crewai chat` imports in this repository: ``src/<[project] name>/crew.py`` and the
class named after the project (``Darkfactory-Crew``). Not a package anyone installs (the
wheel ships only ``darkfactory``): it is here so that `crewai chat` says in one line why it
does not apply, as it does in a project made by `darkfactory init`."""

from darkfactory.crewai_scripts import NoChat

# CrewAI derives the class name from the distribution name, hyphen included.
globals()["Darkfactory-Crew"] = NoChat
