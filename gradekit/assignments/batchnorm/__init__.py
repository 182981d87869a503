"""Batch Normalization in PyTorch: the kit's first assignment (spec: shared/spec/batchnorm-exercise.md)."""
from gradekit.assignment import Assignment

# What a student reads next to each failed check of the original ten.
HINTS = {
    "Learnable parameters set correctly":
        "gamma and beta must be learnable: wrap them in nn.Parameter so autograd and optimizers see them.",
    "Learnable parameter shapes correct":
        "gamma and beta need a broadcastable shape: (1, L) for (N, L) inputs, (1, C, 1, 1) for (N, C, H, W).",
    "Moving average shapes correct":
        "moving_mu and moving_sigma take the same broadcastable shape as gamma and beta.",
    "Test time normalization":
        "With gradients disabled, normalise with the moving averages: (x - moving_mu) / sqrt(moving_sigma + eps).",
    "Mean computation":
        "Average over the batch dimension (FC) or over batch, height and width (conv, keepdim=True).",
    "Variance computation":
        "Use the unbiased variance (torch.var's default) over the same dimensions as the mean.",
    "Train time normalization":
        "Normalise with the batch statistics and take the square root: (x - mean) / sqrt(var + eps).",
    "Train time mean moving average":
        "new = momentum * old + (1 - momentum) * batch mean, as a new tensor (no in-place update).",
    "Train time variance moving average":
        "new = momentum * old + (1 - momentum) * batch variance (unbiased), as a new tensor.",
    "Final scale and shift":
        "The output is gamma * x_hat + beta, with the same shape as the input.",
}

ASSIGNMENT = Assignment(
    name="batchnorm",
    notebook="batchnorm.ipynb",
    class_name="BatchNorm",
    solution="solutions/batchnorm/batchnorm.py",
    checks_module="gradekit.assignments.batchnorm.ten_checks",
    extra_module="gradekit.assignments.batchnorm.extra_checks",
    hints=HINTS,
)
