"""gradekit: auto-graded exercises, from one solution notebook to a graded class."""
import sys

# jsonschema (under nbformat and nbgrader) imports rfc3987_syntax where it is installed (Jupyter's
# event schemas pull it in) only to check the "iri" string format, which no notebook schema uses.
# Importing it builds a grammar: about 1.5 s of every gradekit command. Refused here, jsonschema
# leaves that one format unchecked (its documented fallback when the package is missing).
sys.modules.setdefault("rfc3987_syntax", None)
