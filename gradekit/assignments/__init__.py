"""One package per assignment; each defines ASSIGNMENT (see gradekit/assignment.py)."""
