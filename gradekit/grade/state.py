"""Resumable grading: one record per graded submission, in autograded/state.db (SQLite).

Each finished submission is one committed row, so an interrupted run keeps everything graded
so far and a re-run grades only what is new or changed (its digest differs). A file that is not
a readable database (edited, truncated) is set aside and grading starts over.
"""
import json
import sqlite3
import sys
import time

SCHEMA = """CREATE TABLE IF NOT EXISTS graded (
    student TEXT NOT NULL, assignment TEXT NOT NULL, digest TEXT NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (student, assignment))"""


class State:
    def __init__(self, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = self._open(path)
        except sqlite3.DatabaseError:
            aside = path.with_name(f"{path.name}.unreadable-{int(time.time())}")
            path.replace(aside)
            print(f"warning: {path} was unreadable (kept as {aside.name}); grading every submission again",
                  file=sys.stderr)
            self.db = self._open(path)

    @staticmethod
    def _open(path):
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")  # a crash mid-write loses at most that row
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(SCHEMA)
        db.execute("SELECT count(*) FROM graded").fetchone()
        return db

    def all(self):
        """{(student, assignment): (digest, record)} of everything graded so far."""
        rows = self.db.execute("SELECT student, assignment, digest, record FROM graded").fetchall()
        found = {}
        for student, assignment, digest, record in rows:
            try:
                found[(student, assignment)] = (digest, json.loads(record))
            except ValueError:
                continue  # an unreadable row is graded again
        return found

    def save(self, student, assignment, digest, record):
        self.db.execute("INSERT OR REPLACE INTO graded VALUES (?, ?, ?, ?)",
                        (student, assignment, digest, json.dumps(record)))

    def close(self):
        self.db.close()
