"""The BatchNorm notebook: prose, cell order and nbgrader roles around the reference solution."""
from gradekit.assign.source import answer, given, solution, test, text
from gradekit.assignments.batchnorm.ten_checks import CHECKS

INTRO = r"""
# Batch Normalization from scratch

Deep networks train faster and more reliably when the inputs of every layer keep a steady
distribution. **Batch Normalization** (Ioffe and Szegedy, 2015) does this inside the network: for
each feature (or each channel of a convolution) it standardises the activations with statistics of
the current mini-batch, then lets the network rescale them with two learned parameters.

In this assignment you implement the layer yourself as a PyTorch `nn.Module`, check it against a
battery of ten tests, and answer six questions about why it works.

## The maths

For a mini-batch $x$, per feature (fully connected input of shape $(N, L)$: statistics over the
batch dimension) or per channel (convolutional input of shape $(N, C, H, W)$: statistics over batch,
height and width):

$$\mu_B = \operatorname{mean}(x), \qquad \sigma_B^2 = \operatorname{var}(x)$$

where the variance is the unbiased one, as `torch.var` computes it by default;

$$\hat{x} = \frac{x - \mu_B}{\sqrt{\sigma_B^2 + \epsilon}}, \qquad z = \gamma \, \hat{x} + \beta$$

$\gamma$ (scale) and $\beta$ (shift) are learned. Note the **square root** in the denominator and the
**plus** sign before $\beta$.

At test time there may be a single example, so batch statistics are meaningless. Instead the layer
keeps moving averages, updated at every training step,

$$\mu_{\text{moving}} \leftarrow m\,\mu_{\text{moving}} + (1 - m)\,\mu_B, \qquad
\sigma^2_{\text{moving}} \leftarrow m\,\sigma^2_{\text{moving}} + (1 - m)\,\sigma_B^2,$$

and normalises with them: $\hat{x} = (x - \mu_{\text{moving}}) / \sqrt{\sigma^2_{\text{moving}} + \epsilon}$.
Here the momentum $m = 0.9$ weights the **old** value. (PyTorch's own `nn.BatchNorm` uses the opposite
convention: its `momentum` weights the new batch.)
"""

INSTRUCTIONS = r"""
## Your task

Complete the class below. Only the lines marked by a `# PART n` comment ending in `# UPDATE:` are
yours to write; replace each placeholder line under it. Leave everything else as it is: the
signature, the `ValueError`s, the branch between test and training time, and the `_tmp_*`
attributes, which the checks read.

- `shape` is the shape of the input the layer expects: `(N, L)` or `(N, C, H, W)`.
- `gamma`, `beta`, `moving_mu` and `moving_sigma` all have a broadcastable shape: `(1, L)` or
  `(1, C, 1, 1)`.
- `moving_sigma` holds a running **variance** (not a standard deviation), despite its name.
- The test-time path is taken when gradients are disabled (`torch.is_grad_enabled()` is false, for
  example inside `with torch.no_grad():`), not when `self.training` is false.
- Update the moving averages without building an autograd graph, and without changing the old
  tensors in place.
"""

SELF_CHECK = r"""
## Check your work

Run the next cell. It runs the ten checks of this assignment on your class and prints how many
pass. The autograder runs the same ten checks, and a few more it keeps to itself.
"""

AUTOGRADER = r"""
### Autograder cells

The cells below are where the autograder records one point per check. They do nothing while you
work; leave them in place.
"""

QUESTIONS = [
    ("Why is $\\epsilon$ added inside the square root in the denominator?",
     "To keep the division defined and stable: a feature that is constant over the batch has zero "
     "variance, and a tiny variance would blow the normalised values up. Adding a small $\\epsilon$ "
     "bounds the denominator away from zero."),
    ("Why does the layer use moving averages at test time instead of the statistics of the test batch?",
     "At test time the output for one example must not depend on which other examples share its batch, "
     "and a batch may hold a single example, whose variance is undefined. The moving averages estimate "
     "the statistics of the training distribution and make inference deterministic."),
    ("Does the layer that feeds a BatchNorm layer need a bias term? Explain.",
     "No. Subtracting the batch mean removes any constant added per feature, so the bias has no effect; "
     "$\\beta$ plays its role after normalisation."),
    ("What does Batch Normalization allow you to do with the learning rate, and why?",
     "Use a higher learning rate. Normalisation keeps activations in a stable range whatever the scale of "
     "the weights, so large updates are less likely to make activations and gradients explode or vanish."),
    ("How does Batch Normalization change a network's sensitivity to weight initialisation?",
     "It reduces it: each layer's inputs are re-standardised, so a badly scaled initialisation is "
     "corrected at every BN layer instead of compounding through depth."),
    ("How does the batch size relate to the regularising effect of Batch Normalization?",
     "The batch statistics are noisy estimates, and that noise acts like a regulariser. Smaller batches "
     "give noisier statistics and a stronger effect (too small and training suffers); very large batches "
     "give almost exact statistics and little regularisation."),
]


def self_check_code(checks_code):
    return checks_code.strip() + "\n\n\nprint(summary([ok for ok, why in run_checks(BatchNorm)]))"


def cells(imports, solution_code, checks_code, extra_points):
    body = [
        text(INTRO),
        given("imports", imports),
        text(INSTRUCTIONS),
        solution("batchnorm-class", solution_code),
        text(SELF_CHECK),
        given("self-check", self_check_code(checks_code)),
        text(AUTOGRADER),
    ]
    for number, (name, _probe, _judge) in enumerate(CHECKS):
        body.append(test(f"check-{number}", f"# Check {number} - {name} (1 point)\n"
                         f"### BEGIN HIDDEN TESTS\nassert_check({number}, BatchNorm)\n### END HIDDEN TESTS", 1))
    body.append(test("extra-checks", "# Hidden checks (graded by the autograder)\n### BEGIN HIDDEN TESTS\n"
                     "from gradekit.assignments.batchnorm.extra_checks import assert_all\n"
                     "assert_all(BatchNorm)\n### END HIDDEN TESTS", extra_points))
    body.append(text("## Discussion\n\nAnswer each question in the cell below it, in a few sentences."))
    for number, (question, model_answer) in enumerate(QUESTIONS, start=1):
        body.append(text(f"**Question {number}.** {question}"))
        body.append(answer(f"question-{number}", model_answer, 1))
    return body
