"""Realistic wrong implementations of each assignment, made from its reference solution by a few
literal edits: what the tests check verdicts against, and what `make bench` builds a class from."""
