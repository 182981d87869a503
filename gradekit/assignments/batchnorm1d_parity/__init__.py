"""A BatchNorm1d that matches PyTorch exactly: the kit's fourth assignment (spec:
shared/spec/batchnorm1d-parity.md). Students write a plain-Python BatchNorm1d class and make it
agree with torch.nn.BatchNorm1d: momentum, biased versus unbiased variance, buffer shapes, autograd."""
from gradekit.contract import Assignment, Question

ASSIGNMENT = Assignment(
    name="batchnorm1d_parity",
    title="A BatchNorm1d that matches PyTorch exactly",
    defines=("BatchNorm1d",),
    questions=(
        Question(
            "question-1",
            "In training, PyTorch normalises a batch with its **biased** variance (divide by $N$) but "
            "updates `running_var` with the **unbiased** one (divide by $N - 1$). Why the two different "
            "estimators, and what changes when batches are small?",
            "The two numbers answer different questions. The normalisation standardises *this* batch: "
            "the batch is the whole population being rescaled, so dividing by $N$ gives every feature of "
            "$\\hat{x}$ mean 0 and variance 1 over the batch (up to $\\epsilon$), as in the original paper's "
            "training transform. The running variance instead *estimates* the variance of the data "
            "distribution from samples, to be used at inference on data the layer has not seen; the biased "
            "estimator underestimates it by the factor $(N-1)/N$ on average, and Bessel's correction "
            "removes that bias. With large batches the factor $N/(N-1)$ is close to 1 and the difference is "
            "negligible. With small batches it is not (2 for $N = 2$): the batch variances are both "
            "noisy and too small, training outputs are spread more than eval outputs, and the gap "
            "between training and eval behaviour grows. With $N = 1$ the biased variance is 0 (every "
            "output collapses to $\\beta$) and the unbiased one is undefined, which is why PyTorch "
            "refuses to train on one value per feature.",
        ),
        Question(
            "question-2",
            "What does `momentum` mean in PyTorch's BatchNorm, and what did it mean in the first "
            "assignment? How do you convert one into the other?",
            "In PyTorch, `momentum` is the weight of the **new** batch: "
            "$r \\leftarrow (1 - m)\\,r + m\\,s_B$, default 0.1. In the first assignment (and in the "
            "optimiser sense of the word) it was the weight of the **old** value: "
            "$r \\leftarrow m\\,r + (1 - m)\\,s_B$, with $m = 0.9$. The two updates are the same when "
            "$m_{\\text{PyTorch}} = 1 - m_{\\text{first}}$, so 0.9 there is 0.1 here. A large PyTorch "
            "momentum therefore means a short memory (1 keeps only the last batch, 0 never moves the "
            "running statistics), the opposite of a large optimiser momentum.",
        ),
    ),
    core_points=1,
)
