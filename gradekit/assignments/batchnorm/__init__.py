"""Batch Normalization in PyTorch: the kit's first assignment (spec: shared/spec/batchnorm-exercise.md)."""
from gradekit.contract import Assignment, Question

ASSIGNMENT = Assignment(
    name="batchnorm",
    title="Batch Normalization from scratch",
    defines=("BatchNorm",),
    questions=(
        Question(
            "question-1",
            'Why is $\\epsilon$ added inside the square root in the denominator?',
            'To keep the division defined and stable: a feature that is constant over the batch '
            'has zero variance, and a tiny variance would blow the normalised values up. Adding a'
            ' small $\\epsilon$ bounds the denominator away from zero.',
        ),
        Question(
            "question-2",
            'Why does the layer use moving averages at test time instead of the statistics of the'
            ' test batch?',
            'At test time the output for one example must not depend on which other examples '
            'share its batch, and a batch may hold a single example, whose variance is undefined.'
            ' The moving averages estimate the statistics of the training distribution and make '
            'inference deterministic.',
        ),
        Question(
            "question-3",
            'Does the layer that feeds a BatchNorm layer need a bias term? Explain.',
            'No. Subtracting the batch mean removes any constant added per feature, so the bias '
            'has no effect; $\\beta$ plays its role after normalisation.',
        ),
        Question(
            "question-4",
            'What does Batch Normalization allow you to do with the learning rate, and why?',
            'Use a higher learning rate. Normalisation keeps activations in a stable range '
            'whatever the scale of the weights, so large updates are less likely to make '
            'activations and gradients explode or vanish.',
        ),
        Question(
            "question-5",
            "How does Batch Normalization change a network's sensitivity to weight "
            'initialisation?',
            "It reduces it: each layer's inputs are re-standardised, so a badly scaled "
            'initialisation is corrected at every BN layer instead of compounding through depth.',
        ),
        Question(
            "question-6",
            'How does the batch size relate to the regularising effect of Batch Normalization?',
            'The batch statistics are noisy estimates, and that noise acts like a regulariser. '
            'Smaller batches give noisier statistics and a stronger effect (too small and '
            'training suffers); very large batches give almost exact statistics and little '
            'regularisation.',
        ),
    ),
)
