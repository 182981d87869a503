"""nbgrader preprocessor: each solution region becomes its own placeholder, not one stub for all.

In the source, a region may list the lines students start from, each behind `### PLACEHOLDER `:

        ### BEGIN SOLUTION
        ### PLACEHOLDER self.gamma = torch.ones(1)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        ### END SOLUTION

`nbgrader generate_assignment` (configured in grader_config.py to use this class in place of
ClearSolutions) releases `self.gamma = torch.ones(1)`, indented like the marker. A region with no
placeholder lines gets nbgrader's usual code stub. When the solution runs, the markers are comments.
"""
import re

from nbgrader.preprocessors import ClearSolutions
from traitlets import Unicode


class ClearSolutionsWithPlaceholders(ClearSolutions):
    placeholder_marker = Unicode(
        "### PLACEHOLDER ", help="Prefix of a line, inside a solution region, that the release keeps as code."
    ).tag(config=True)

    def _replace_solution_region(self, cell, language):
        if cell.cell_type != "code" or self.placeholder_marker not in cell.source:
            return super()._replace_solution_region(cell, language)
        # Swap every region for its own placeholder lines, then let nbgrader stub the rest.
        new_lines, region = [], None
        for line in cell.source.split("\n"):
            if self.begin_solution_delimeter in line:
                if region is not None:
                    raise RuntimeError("encountered nested begin solution statements")
                region = {"indent": re.match(r"\s*", line).group(0), "placeholders": [], "lines": [line]}
            elif region is not None and self.end_solution_delimeter in line:
                region["lines"].append(line)
                if region["placeholders"]:
                    new_lines += region["placeholders"]
                else:  # no placeholder given: keep the region for nbgrader's own stub
                    new_lines += region["lines"]
                region = None
            elif region is not None:
                region["lines"].append(line)
                stripped = line.strip()
                if stripped.startswith(self.placeholder_marker.strip()):
                    code = stripped[len(self.placeholder_marker.strip()):].strip()
                    region["placeholders"].append(region["indent"] + code)
            else:
                new_lines.append(line)
        if region is not None:
            raise RuntimeError("no end solution statement found")
        replaced_here = new_lines != cell.source.split("\n")
        cell.source = "\n".join(new_lines)
        return super()._replace_solution_region(cell, language) or replaced_here
