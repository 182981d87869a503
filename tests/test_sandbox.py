"""The sandbox's plumbing: observations cross as plain data, a dead sandbox is replaced."""
import os
import signal

import numpy
import pytest
import torch

from conftest import COURSE
from gradekit import wire
from gradekit.assignments.batchnorm.mutants import MUTANTS
from gradekit.grade.one import Grader

SOLUTION = MUTANTS[0].code()


def test_wire_round_trips_plain_data():
    value = {"t": torch.randn(3, 4, dtype=torch.float64), "shape": (1, 2), "flags": [True, None, "x", 1.5],
             "half": torch.ones(2, dtype=torch.bfloat16), "empty": torch.empty(0, 3)}
    back = wire.decode(wire.encode(value))
    assert torch.equal(back["t"], value["t"]) and back["t"].dtype == torch.float64
    assert back["shape"] == (1, 2) and back["flags"] == [True, None, "x", 1.5]
    assert back["half"].dtype == torch.bfloat16 and back["empty"].shape == (0, 3)


def test_wire_turns_foreign_objects_into_markers():
    back = wire.decode(wire.encode({"array": numpy.zeros(2), "obj": object()}))
    assert back == {"array": wire.Unsupported("ndarray"), "obj": wire.Unsupported("object")}


@pytest.mark.parametrize("payload", [b"", b"\x05\x00\x00\x00\x00\x00\x00\x00{bad}",
                                     wire.encode({"t": torch.ones(4)})[:-3],
                                     b"\x16\x00\x00\x00\x00\x00\x00\x00" + b'{"tensor": "object"}  '])
def test_wire_rejects_malformed_answers(payload):
    with pytest.raises(wire.WireError):
        wire.decode(payload)


def test_a_sandbox_that_died_between_jobs_is_replaced():
    with Grader("batchnorm", COURSE) as grader:
        assert grader.grade_cells("first", [SOLUTION]).passed_ten == 10
        os.killpg(grader.worker.process.pid, signal.SIGKILL)
        grader.worker.process.wait()
        second = grader.grade_cells("second", [SOLUTION])
        assert second.status == "ok" and second.passed_ten == 10
