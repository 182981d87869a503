"""The batch normalization backward pass by hand: the kit's second assignment (spec:
shared/spec/batchnorm-backward.md). Students write the training forward pass, its gradients
staged step by step, and the same gradients from a closed form, all without autograd."""
from gradekit.contract import Assignment, Question

ASSIGNMENT = Assignment(
    name="batchnorm_backward",
    title="Batch normalization: the backward pass by hand",
    defines=("batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt"),
    questions=(
        Question(
            "question-derivation",
            'Derive the closed form of $\\frac{\\partial L}{\\partial x}$ that `batchnorm_backward_alt` uses. '
            'Write it in Markdown with LaTeX, in terms of $\\frac{\\partial L}{\\partial y}$, $\\hat{x}$, '
            '$\\gamma$, $\\sigma = \\sqrt{\\operatorname{var} + \\epsilon}$ and $N$, and show the main steps: '
            'how each of the three paths from $x_i$ to the loss contributes.',
            'Work on one feature; write $g_i = \\frac{\\partial L}{\\partial y_i}$ and '
            '$\\hat{g}_i = \\frac{\\partial L}{\\partial \\hat{x}_i} = \\gamma\\, g_i$. With '
            '$\\mu = \\frac{1}{N}\\sum_j x_j$, $v = \\frac{1}{N}\\sum_j (x_j - \\mu)^2$, '
            '$\\sigma = \\sqrt{v + \\epsilon}$ and $\\hat{x}_j = (x_j - \\mu)/\\sigma$, $x_i$ reaches the loss '
            'directly, through $\\mu$ and through $v$:\n\n'
            '$$\\frac{\\partial L}{\\partial x_i} = \\frac{\\hat{g}_i}{\\sigma} + '
            '\\frac{\\partial L}{\\partial v}\\,\\frac{2 (x_i - \\mu)}{N} + '
            '\\frac{1}{N}\\frac{\\partial L}{\\partial \\mu}.$$\n\n'
            'The variance branch: $\\frac{\\partial L}{\\partial v} = \\sum_j \\hat{g}_j (x_j - \\mu) '
            '\\cdot \\left(-\\tfrac{1}{2}\\right) \\sigma^{-3} = '
            '-\\frac{1}{2\\sigma^2} \\sum_j \\hat{g}_j \\hat{x}_j$. '
            'The mean branch: $\\frac{\\partial L}{\\partial \\mu} = -\\frac{1}{\\sigma}\\sum_j \\hat{g}_j + '
            '\\frac{\\partial L}{\\partial v} \\cdot \\frac{-2}{N}\\sum_j (x_j - \\mu)$, and the last sum is zero. '
            'Substituting, with $x_i - \\mu = \\sigma \\hat{x}_i$:\n\n'
            '$$\\frac{\\partial L}{\\partial x_i} = \\frac{1}{N\\sigma}\\left(N \\hat{g}_i - \\sum_j \\hat{g}_j - '
            '\\hat{x}_i \\sum_j \\hat{g}_j \\hat{x}_j\\right) = \\frac{\\gamma}{N\\sigma}\\left(N g_i - \\sum_j g_j '
            '- \\hat{x}_i \\sum_j g_j \\hat{x}_j\\right).$$\n\n'
            'The two sums are exactly $\\frac{\\partial L}{\\partial \\beta}$ and '
            '$\\frac{\\partial L}{\\partial \\gamma}$, so the code reuses dbeta and dgamma.',
            points=2,
        ),
        Question(
            "question-bias",
            'A linear layer $z = W a + b$ feeds a batch normalization layer. Show that its bias $b$ has no '
            'effect on the batch normalization output (so the layer can drop it), and say what takes over its '
            'role.',
            'Per feature, adding $b$ to every example shifts the batch mean by the same amount, '
            '$\\mu(z + b) = \\mu(z) + b$, and leaves the variance unchanged, since it depends only on '
            '$z - \\mu$. So $\\hat{x} = \\frac{(z + b) - (\\mu + b)}{\\sqrt{v + \\epsilon}} = '
            '\\frac{z - \\mu}{\\sqrt{v + \\epsilon}}$ does not depend on $b$, and neither does the output '
            '$\\gamma \\hat{x} + \\beta$ nor the gradient of the loss with respect to $W$; the gradient with '
            'respect to $b$ is zero (dx sums to zero over the batch). The shift $\\beta$ of batch '
            'normalization plays the role of the bias.',
        ),
    ),
)
